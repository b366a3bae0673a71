import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

/**
 * Where the native search comes from: a path to an `rg` binary, `false` for never (the JavaScript
 * search only), or undefined to look for `rg` on the PATH.
 */
export type RipgrepOption = string | false | undefined;

/** Resolves the option once, on first use: the `rg` to run, or undefined for the JavaScript search. */
export function ripgrepLocator(
  option: RipgrepOption,
  pathEnv: () => string | undefined,
): () => string | undefined {
  let found: { bin: string | undefined } | undefined;
  return () => {
    found ??= { bin: locate(option, pathEnv) };
    return found.bin;
  };
}

function locate(option: RipgrepOption, pathEnv: () => string | undefined): string | undefined {
  if (option === false) return undefined;
  const candidates =
    option === undefined
      ? (pathEnv() ?? '')
          .split(path.delimiter)
          .filter((dir) => path.isAbsolute(dir))
          .map((dir) => path.join(dir, 'rg'))
      : [option];
  return candidates.find((file) => {
    try {
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

export interface RipgrepQuery {
  /** Searched for as fixed text. */
  text: string;
  caseSensitive: boolean;
  gitignore: boolean;
  hidden: boolean;
  maxFileBytes: number;
}

/**
 * The fixed text ripgrep can pre-select files for, or undefined. ripgrep only picks the files to
 * read; Keel reads each through the jail and matches it with the JavaScript regex, so ripgrep's
 * picks must include every file the JavaScript search would match: a literal (or a pattern with no
 * regex syntax) is the same bytes to both, and an ASCII one folded by ripgrep's Unicode case
 * folding covers JavaScript's. Anything else is searched by JavaScript alone.
 */
export function prefilterText(pattern: string, literal: boolean, caseSensitive: boolean): string | undefined {
  if (!literal && /[.*+?^${}()|[\]\\]/.test(pattern)) return undefined;
  // A line never holds a newline, and argv cannot hold a NUL.
  if (pattern.includes('\n') || pattern.includes('\0')) return undefined;
  // JavaScript matches U+FFFD where a file's bytes are not UTF-8; ripgrep reads the bytes.
  if (pattern.includes('\uFFFD')) return undefined;
  if (!caseSensitive && !/^[\t\x20-\x7e]*$/.test(pattern)) return undefined;
  return pattern;
}

/**
 * ripgrep's arguments: list the files holding the text, NUL-separated, reading every file as raw
 * bytes (no binary skipping, no transcoding: a superset of what Keel searches), never following a
 * symlink (ripgrep's default, kept), files over maxFileBytes left out. Hidden names and `.git` are
 * left out as the walk leaves them out; `.gitignore` files from the search's directory down prune
 * the walk, and Keel applies its own rules (deny globs, Keel's files, every `.gitignore` from the
 * root, include/exclude) to each file ripgrep names.
 */
export function ripgrepArgs(query: RipgrepQuery): string[] {
  return [
    '--no-config',
    '--files-with-matches',
    '--null',
    '--text',
    '--encoding',
    'none',
    '--no-messages',
    '--max-filesize',
    String(query.maxFileBytes),
    ...(query.gitignore
      ? [
          '--no-ignore-dot',
          '--no-ignore-exclude',
          '--no-ignore-global',
          '--no-ignore-parent',
          '--no-require-git',
        ]
      : ['--no-ignore']),
    ...(query.hidden ? ['--hidden'] : []),
    ...(query.hidden && query.gitignore ? ['--glob', '!.git'] : []),
    ...(query.caseSensitive ? ['--case-sensitive'] : ['--ignore-case']),
    '--fixed-strings',
    '--regexp',
    query.text,
    '--',
    '.',
  ];
}

export type RipgrepRun = { kind: 'listed'; files: string[] } | { kind: 'failed' } | { kind: 'timedOut' };

/** More file names than this (in bytes) and ripgrep's list is given up for the walk, which pages. */
const maxListBytes = 64 * 1024 * 1024;

/**
 * Runs ripgrep in `dir` and returns the files it names, relative to `dir`. Killed at `timeoutMs`
 * or on abort. Any exit but 0 (found) or 1 (nothing found), or a list over 64 MiB, is a failure:
 * the caller searches without it rather than trust a partial list.
 */
export function runRipgrep(
  bin: string,
  dir: string,
  args: readonly string[],
  options: { timeoutMs: number; signal: AbortSignal },
): Promise<RipgrepRun> {
  return new Promise((resolve) => {
    const child = spawn(bin, args, { cwd: dir, stdio: ['ignore', 'pipe', 'ignore'] });
    const chunks: Buffer[] = [];
    let outcome: RipgrepRun | undefined;
    const stop = (result: RipgrepRun) => {
      outcome ??= result;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => stop({ kind: 'timedOut' }), options.timeoutMs);
    const onAbort = () => stop({ kind: 'timedOut' });
    options.signal.addEventListener('abort', onAbort, { once: true });
    let listed = 0;
    child.stdout.on('data', (chunk: Buffer) => {
      listed += chunk.length;
      if (listed > maxListBytes) stop({ kind: 'failed' });
      else chunks.push(chunk);
    });
    child.on('error', () => stop({ kind: 'failed' }));
    child.on('close', (code) => {
      clearTimeout(timer);
      options.signal.removeEventListener('abort', onAbort);
      if (outcome !== undefined) return resolve(outcome);
      if (code !== 0 && code !== 1) return resolve({ kind: 'failed' });
      const files = Buffer.concat(chunks)
        .toString('utf8')
        .split('\0')
        .filter((name) => name !== '')
        .map((name) => (name.startsWith('./') ? name.slice(2) : name));
      resolve({ kind: 'listed', files });
    });
  });
}
