#!/usr/bin/env node
// Runs the benchmarks side by side with their references and prints ratios. Not a test: nothing
// here passes or fails on a timing; the figures are for the issue notes and for regressions.
//   pnpm bench                 every suite
//   pnpm bench -- kit git      only these suites
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const suites = [
  'kit',
  'filesystem',
  'git',
  'test-runner',
  'supervisor',
  'cli',
  'deploy',
  'scale',
  'harness',
  'context',
];
const wanted = process.argv.slice(2).filter((arg) => arg !== '--');
if (wanted.includes('--help') || wanted.includes('-h')) {
  process.stdout.write(
    `usage: pnpm bench [suite…]\nRuns each suite beside its reference and prints the ratios (no pass or fail on a timing).\nsuites (default: all): ${suites.join(', ')}\n`,
  );
  process.exit(0);
}
const selected = wanted.length === 0 ? suites : suites.filter((suite) => wanted.includes(suite));
const unknown = wanted.filter((arg) => !suites.includes(arg));
if (unknown.length > 0) {
  process.stderr.write(
    `unknown suite(s): ${unknown.join(', ')}; known: ${suites.join(', ')}\nhint: pnpm bench --help\n`,
  );
  process.exit(2);
}

const here = path.dirname(fileURLToPath(import.meta.url));
const log = (message) => process.stderr.write(`[bench] ${message}\n`);
const rows = [];
const loads = {};
for (const suite of selected) {
  const entry = path.join(here, suite, 'bench.mjs');
  if (!existsSync(entry)) {
    log(`${suite}: no benchmark yet, skipped`);
    continue;
  }
  const workDir = mkdtempSync(path.join(tmpdir(), `keel-bench-${suite}-`));
  log(`${suite}: starting`);
  const loadAtStart = loadavg()[0];
  try {
    const module = await import(entry);
    for (const row of await module.run({ log: (message) => log(`${suite}: ${message}`), workDir }))
      rows.push({ suite, ...row });
  } catch (error) {
    log(`${suite}: FAILED: ${error instanceof Error ? error.stack : String(error)}`);
    process.exitCode = 1;
  } finally {
    rmSync(workDir, { recursive: true, force: true });
    loads[suite] = [loadAtStart, loadavg()[0]];
  }
}

const format = (value) => (Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(3));
const cellsOf = (row) => [
  row.name,
  format(row.keel),
  format(row.reference),
  row.unit,
  row.ratio.toFixed(3),
  row.target,
];
const table = [
  ['suite', 'benchmark', 'keel', 'reference', 'unit', 'ratio', 'target'],
  ...rows.map((row) => [row.suite, ...cellsOf(row)]),
];
const widths = table[0].map((_, column) => Math.max(...table.map((line) => String(line[column]).length)));
const lines = table.map((line) =>
  line
    .map((cell, column) => String(cell).padEnd(widths[column]))
    .join('  ')
    .trimEnd(),
);
process.stdout.write(
  `\n${lines[0]}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${lines.slice(1).join('\n')}\n`,
);
for (const row of rows.filter((r) => r.note))
  process.stdout.write(`  ${row.suite} / ${row.name}: ${row.note}\n`);

const resultsDir = path.join(here, '..', 'results');
mkdirSync(resultsDir, { recursive: true });
writeFileSync(
  path.join(resultsDir, 'latest.json'),
  `${JSON.stringify({ at: new Date().toISOString(), node: process.version, rows }, null, 2)}\n`,
);

// A suite with a ratio table in README.md (between its `ratios-SUITE` markers) gets it rewritten by
// its own run; the other suites' tables stay as they were.
const readme = path.join(here, '..', 'README.md');
let text = readFileSync(readme, 'utf8');
for (const suite of selected) {
  const begin = `<!-- ratios-${suite}:begin (pnpm bench ${suite} rewrites this part) -->`;
  const end = `<!-- ratios-${suite}:end -->`;
  const from = text.indexOf(begin);
  const to = text.indexOf(end);
  const suiteRows = rows.filter((row) => row.suite === suite);
  if (from < 0 || to < from || suiteRows.length === 0) continue;
  const lines = [
    ['benchmark', 'keel', 'reference', 'unit', 'ratio', 'target', 'note'],
    ...suiteRows.map((row) => [...cellsOf(row), row.note ?? '']),
  ].map((line) => line.map((cell) => String(cell).replaceAll('|', '\\|')));
  // Padded as Prettier pads a Markdown table, so the README stays formatted.
  const widths = lines[0].map((_, i) => Math.max(3, ...lines.map((line) => line[i].length)));
  const row = (line) => `| ${line.map((cell, i) => cell.padEnd(widths[i])).join(' | ')} |`;
  const table = [row(lines[0]), row(widths.map((w) => '-'.repeat(w))), ...lines.slice(1).map(row)].join('\n');
  const [start, finish] = loads[suite].map((load) => load.toFixed(2));
  const meta = `Measured ${new Date().toISOString().slice(0, 10)} on Node ${process.version}, ${cpus().length} cores; load average (1 min) ${start} when the suite started, ${finish} when it ended.`;
  text = `${text.slice(0, from + begin.length)}\n\n${meta}\n\n${table}\n\n${text.slice(to)}`;
}
writeFileSync(readme, text);
