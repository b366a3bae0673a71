#!/usr/bin/env node
// `pnpm keel:link` / `pnpm keel:unlink`: puts `keel` on the PATH as a symbolic link in npm's global
// bin directory (where `npm install -g pnpm` put pnpm, so it is on the PATH wherever that worked),
// pointing at this checkout's supervisor bin. A link, not a copy: a rebuild takes effect at once.
// It replaces only a `keel` that is Keel's (a link into a @keel/supervisor package), never another.
import { execFileSync } from 'node:child_process';
import {
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  symlinkSync,
  unlinkSync,
} from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const say = (text) => process.stdout.write(`${text}\n`);
const fail = (text, hint) => {
  process.stderr.write(`keel:link: ${text}\n${hint === undefined ? '' : `hint: ${hint}\n`}`);
  process.exit(1);
};

const unlink = process.argv.includes('--unlink');
const checkout = path.resolve(fileURLToPath(new URL('..', import.meta.url)));
const supervisor = path.join(checkout, 'apps', 'supervisor');
const target = path.join(
  supervisor,
  JSON.parse(readFileSync(path.join(supervisor, 'package.json'), 'utf8')).bin.keel,
);

let prefix;
try {
  prefix = execFileSync('npm', ['prefix', '--global'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim();
} catch (error) {
  fail(`\`npm prefix --global\` failed: ${error.message}`, 'npm comes with Node.js; is it on the PATH?');
}
if (process.platform === 'win32')
  fail('linking is for POSIX shells', `run keel as: node ${path.join(supervisor, 'dist', 'bin.js')}`);
const binDir = path.join(prefix, 'bin');
const link = path.join(binDir, 'keel');

/** What an existing `keel` is: absent, this checkout's link, another Keel's link, or not Keel's. */
function existing() {
  let stat;
  try {
    stat = lstatSync(link);
  } catch {
    return { kind: 'absent' };
  }
  if (!stat.isSymbolicLink()) return { kind: 'foreign', what: 'a file, not a link' };
  const to = path.resolve(binDir, readlinkSync(link));
  let real;
  try {
    real = realpathSync(to);
  } catch {
    // A dangling link named keel whose target was a Keel bin (a deleted checkout) is still Keel's.
    return /[/\\]bin[/\\]keel\.js$|[/\\]dist[/\\]bin\.js$/.test(to)
      ? { kind: 'keel', to }
      : { kind: 'foreign', what: `a link to ${to}` };
  }
  if (real === realpathSync(target)) return { kind: 'this', to };
  try {
    const pkg = JSON.parse(readFileSync(path.join(path.dirname(real), '..', 'package.json'), 'utf8'));
    if (pkg.name === '@keel/supervisor') return { kind: 'keel', to };
  } catch {
    // no package.json above it: not a Keel bin
  }
  return { kind: 'foreign', what: `a link to ${to}` };
}

const found = existing();
if (found.kind === 'foreign')
  fail(
    `${link} exists and is not Keel's (${found.what}); leaving it alone`,
    `remove it yourself if it should go, or run keel as: node ${path.join(supervisor, 'dist', 'bin.js')}`,
  );

if (unlink) {
  if (found.kind === 'absent') say(`no keel in ${binDir}: nothing to unlink`);
  else {
    unlinkSync(link);
    say(`removed ${link} (it pointed at ${found.to})`);
  }
  process.exit(0);
}

if (found.kind === 'this') say(`${link} already points at ${target}`);
else {
  mkdirSync(binDir, { recursive: true });
  if (found.kind === 'keel') unlinkSync(link);
  symlinkSync(target, link);
  say(`linked ${link} -> ${target}${found.kind === 'keel' ? ` (it pointed at ${found.to})` : ''}`);
}
// The shell runs the first `keel` on the PATH: say so when that is not this one.
const dirs = (process.env.PATH ?? '').split(path.delimiter).filter((dir) => dir !== '');
const first = dirs
  .map((dir) => path.join(path.resolve(dir), 'keel'))
  .find((file) => {
    try {
      return lstatSync(file) !== undefined;
    } catch {
      return false;
    }
  });
if (!dirs.some((dir) => path.resolve(dir) === binDir))
  say(`note: ${binDir} is not on your PATH; add it (export PATH="${binDir}:$PATH") for \`keel\` to be found`);
else if (first !== undefined && first !== link)
  say(
    `note: ${first} comes first on your PATH, so \`keel\` runs that one; remove it or put ${binDir} before it`,
  );
else say('`keel --help` lists the commands; `pnpm keel:unlink` removes the link');
