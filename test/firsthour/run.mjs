#!/usr/bin/env node
// A newcomer's first hour, run for real: a fresh clone of this repository in a new directory, the
// README's main command exactly as written (pnpm installed into a global prefix of its own, so
// `pnpm keel:link` links `keel` there and nothing of this machine's global npm is touched), then
// every command the demo prints, exactly as printed, from the directory it names.
//
//   node test/firsthour/run.mjs [--keep]
//
// Run by its own .ci/run stage, not by `pnpm test`: the clone's install compiles better-sqlite3
// unless the pnpm store has it. Needs no TTY; exits 0 when every command exited as documented,
// else 1 naming the first one that did not. --keep leaves the clone and the demos for a look.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const keep = process.argv.includes('--keep');
const checkout = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));
const work = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'keel-firsthour-')));
const clone = path.join(work, 'keel');
const prefix = path.join(work, 'npm-global');
const demos = [];
const started = Date.now();

const say = (text) => process.stdout.write(`[firsthour] ${text}\n`);
class Failure extends Error {}
const fail = (text) => {
  throw new Failure(text);
};

/**
 * The shell a newcomer has: their PATH with the global prefix's bin first (where `npm install -g`
 * puts pnpm and `pnpm keel:link` puts keel), npm pointed at that prefix, no TTY. Nothing named
 * keel from elsewhere on the PATH.
 */
const env = {
  ...process.env,
  CI: 'true',
  NPM_CONFIG_PREFIX: prefix,
  npm_config_prefix: prefix,
  // Install from the warm caches when they hold the packages (CI warmed them in the step before).
  npm_config_prefer_offline: 'true',
  PATH: [
    path.join(prefix, 'bin'),
    ...(process.env.PATH ?? '')
      .split(path.delimiter)
      .filter((dir) => dir !== '' && !existsSync(path.join(dir, 'keel'))),
  ].join(path.delimiter),
};
for (const key of Object.keys(env))
  if (key.startsWith('npm_lifecycle_') || key === 'INIT_CWD' || key === 'KEEL_CONFIG') delete env[key];

/** One shell command, as a person types it, in `cwd`; its output is shown and returned. */
function sh(command, cwd) {
  say(`$ ${command}    (in ${cwd})`);
  const result = spawnSync('bash', ['-c', command], {
    cwd,
    env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 256 * 1024 * 1024,
  });
  if (result.error !== undefined) fail(`${command}: ${result.error.message}`);
  process.stdout.write(result.stdout);
  process.stdout.write(result.stderr);
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

function expectExit(ran, code, command) {
  if (ran.code !== code) fail(`\`${command}\` exited ${ran.code}, documented ${code}`);
}

/** The README's set-up commands: exactly two sh blocks, the main job first. */
function readmeCommands(readme) {
  const setUp = readme.slice(
    readme.indexOf('## Set up'),
    readme.indexOf('\n## ', readme.indexOf('## Set up') + 1),
  );
  const blocks = [...setUp.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1].trim());
  if (blocks.length !== 2)
    fail(`the README's Set up section has ${blocks.length} sh blocks, not the two set-up commands`);
  if (blocks.some((b) => b.includes('\n'))) fail('a README set-up command spans more than one line');
  return { main: blocks[0], tests: blocks[1] };
}

/**
 * The commands a demo printed: each indented line of its two blocks, with the directory it runs
 * in (a printed `cd` moves there). A line indented further says what the command above it does.
 */
function printedCommands(stdout, from) {
  const commands = [];
  let cwd = from;
  for (const line of stdout.split('\n')) {
    const m = /^ {2}(\S.*)$/.exec(line);
    if (m === null) continue;
    const command = m[1];
    const cd = /^cd (.+)$/.exec(command);
    if (cd !== null) {
      cwd = path.resolve(cwd, cd[1].replace(/^'(.*)'$/, '$1'));
      continue;
    }
    commands.push({ command, cwd });
  }
  return commands;
}

/** What each printed command is documented to do: its exit code and, for some, its first line. */
function documented(command) {
  if (command.startsWith('keel replay '))
    return { code: 0, first: /^identical: 27 steps, 21 tool calls, ended succeeded as recorded$/ };
  if (command.startsWith('keel approve '))
    return { code: 0, first: /^approved ap-[0-9a-f]{10} \(apply_deploy of plan/ };
  if (command.startsWith('keel deny '))
    return { code: 0, first: /^denied ap-[0-9a-f]{10} as \S+; task t-\S+ ended$/ };
  if (/^keel audit verify$/.test(command)) return { code: 0, first: /^ok: \d+ events, chain intact$/ };
  return { code: 0 };
}

function runPrinted(entry) {
  const ran = sh(entry.command, entry.cwd);
  const want = documented(entry.command);
  expectExit(ran, want.code, entry.command);
  if (want.first !== undefined && !want.first.test(ran.stdout.split('\n')[0] ?? ''))
    fail(`\`${entry.command}\` said "${ran.stdout.split('\n')[0]}", documented ${want.first}`);
  return ran;
}

/** `keel demo` as the README runs it; the commands it printed, each a `keel` on the PATH. */
function demo(command, cwd) {
  const ran = sh(command, cwd);
  if (/Failed to create bin/.test(ran.stdout + ran.stderr)) fail('pnpm warned "Failed to create bin"');
  expectExit(ran, 0, command);
  // What keel demo printed (the install and build before it print indented lines too).
  const own = ran.stdout.slice(Math.max(0, ran.stdout.indexOf('demo project: ')));
  const printed = printedCommands(own, cwd);
  const dir = /^demo project: (.+)\/project$/m.exec(ran.stdout)?.[1];
  if (dir === undefined) fail('the demo did not say where its project is');
  demos.push(dir);
  const keelLines = printed.filter((p) => p.command.startsWith('keel '));
  if (keelLines.length !== 8)
    fail(
      `the demo printed ${keelLines.length} keel commands, expected 8:\n${printed.map((p) => p.command).join('\n')}`,
    );
  if (printed.some((p) => p.cwd !== dir)) fail(`a printed command runs outside the demo's directory ${dir}`);
  return printed;
}

let status = 0;
try {
  say(
    `a fresh clone of ${checkout} at ${sh('git rev-parse --short HEAD', checkout).stdout.trim()}, in ${work}`,
  );
  expectExit(sh(`git clone --quiet --no-hardlinks ${JSON.stringify(checkout)} keel`, work), 0, 'git clone');
  const readme = readmeCommands(readFileSync(path.join(clone, 'README.md'), 'utf8'));
  if (!readme.main.endsWith('&& pnpm keel:link && keel demo'))
    fail(`the README's main command no longer ends with pnpm keel:link && keel demo: ${readme.main}`);

  // The README's main command, exactly: install pnpm, install, build, link keel, keel demo.
  const first = demo(readme.main, clone);

  const byVerb = (verb) =>
    first.filter((p) => p.command.startsWith(`keel ${verb} `) || p.command === `keel ${verb}`);
  // The waiting task: what waits, approve it (the task finishes), then everything "where to look next".
  runPrinted(byVerb('approvals')[0]);
  runPrinted(byVerb('approve')[0]);
  for (const entry of first.filter((p) => !/^keel (approvals|approve|deny)\b/.test(p.command)))
    runPrinted(entry);

  // The other answer the demo offers, on a second demo: deny.
  const second = demo('keel demo', clone);
  runPrinted(second.find((p) => p.command.startsWith('keel deny ')));
  const after = runPrinted(second.find((p) => p.command.startsWith('keel show ')));
  if (!/^status {4}failed$/m.test(after.stdout))
    fail('after keel deny, keel show does not say the task failed');

  expectExit(sh('pnpm keel:unlink', clone), 0, 'pnpm keel:unlink');
  if (existsSync(path.join(prefix, 'bin', 'keel'))) fail('pnpm keel:unlink left the keel link');
  say(
    `ok: the README's main command and every command the demo printed ran as documented (${((Date.now() - started) / 1000).toFixed(0)} s)`,
  );
} catch (error) {
  status = 1;
  process.stderr.write(
    `[firsthour] FAILED: ${error instanceof Failure ? error.message : (error.stack ?? error)}\n`,
  );
} finally {
  if (keep) say(`kept: ${work} (clone, npm prefix) and the demos: ${demos.join(', ')}`);
  else {
    // The link lives in this run's own prefix: removing the prefix removes it, whatever happened above.
    rmSync(work, { recursive: true, force: true });
    for (const dir of demos) rmSync(dir, { recursive: true, force: true });
  }
}
process.exit(status);
