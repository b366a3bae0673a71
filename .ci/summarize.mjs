// Adds up the vitest summaries of every package in a `pnpm test` log and prints one closing line,
// 'tests: N passed, N failed, N skipped', that any CI reader understands.
import { readFileSync } from 'node:fs';

// Colour codes are switched off in CI, but strip any that slip through.
const escape = String.fromCharCode(27);
const log = readFileSync(process.argv[2], 'utf8').replaceAll(new RegExp(`${escape}\\[[0-9;]*m`, 'g'), '');
const totals = { passed: 0, failed: 0, skipped: 0 };
let suites = 0;
for (const line of log.split('\n')) {
  const match = /\bTests\s+(.*)\(\d+\)\s*$/.exec(line);
  if (match === null) continue;
  suites++;
  for (const part of match[1].split('|')) {
    const count = /(\d+)\s+(passed|failed|skipped|todo)/.exec(part.trim());
    if (count === null) continue;
    const kind = count[2] === 'todo' ? 'skipped' : count[2];
    totals[kind] += Number(count[1]);
  }
}
process.stdout.write(`\n[ci] ${suites} test suites\n`);
process.stdout.write(`tests: ${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped\n`);
