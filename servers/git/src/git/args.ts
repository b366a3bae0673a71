import { closeSync, constants as fsConstants, fstatSync, readSync } from 'node:fs';
import path from 'node:path';
import * as z from 'zod';
import { fail, ok, ownFileDenied, type Outcome, type PathJail } from '@keel/kit';
import type { Repo } from './repo.js';

export const repoArg = z
  .string()
  .min(1)
  .max(4096)
  .default('.')
  .describe('Repository (any directory in it): relative to the first root, or absolute inside a root.');

const noControl = /^[^\x00-\x1f\x7f]*$/;

/** A revision as a user writes it (`main`, `HEAD~2`, a sha, `v1.0`); checked with `rev-parse --verify` before use. */
export function refArg(what: string) {
  return z.string().min(1).max(256).regex(noControl, 'no control characters').describe(what);
}

export const pathsArg = z
  .array(z.string().min(1).max(4096).regex(noControl, 'no control characters'))
  .max(1000)
  .describe('Paths relative to the repository top level (files or directories), matched literally.');

/** A user value that git would read as an option if it ever reached an option position. */
export function refuseOptionLike(value: string, field: string): Outcome<void> {
  if (value.startsWith('-')) {
    return fail(
      'INVALID_ARGUMENT',
      `${field} '${value}' starts with '-', which git would read as an option`,
      {
        hint: `Pass a ${field} name that does not start with '-'.`,
        details: { field },
      },
    );
  }
  return ok(undefined);
}

/**
 * Turns user paths into paths relative to the top level, refusing any that leave the work tree.
 * Containment is lexical: git never follows a symlink inside a pathspec, so what matters is where
 * the path names, and the repository itself is already inside the roots.
 */
export function repoPaths(repo: Repo, paths: readonly string[], field = 'paths'): Outcome<string[]> {
  const out: string[] = [];
  for (const input of paths) {
    const absolute = path.resolve(repo.top, input);
    const rel = path.relative(repo.top, absolute);
    if (rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel)) {
      return fail('OUTSIDE_ROOTS', `${field} entry '${input}' is outside the repository '${repo.display}'`, {
        hint: 'Pass paths relative to the repository top level, inside it.',
        details: { field, path: input },
      });
    }
    // Lexical, like git: a pathspec never follows a symlink, so where it names is what git would read.
    if (repo.jail.isDenied(absolute))
      return { ok: false, error: { ...ownFileDenied(input).error, details: { field, path: input } } };
    if (rel === '.git' || rel.startsWith(`.git${path.sep}`)) {
      return fail('INVALID_ARGUMENT', `${field} entry '${input}' names the .git directory`, {
        hint: 'Pass work-tree paths only.',
        details: { field },
      });
    }
    out.push(rel === '' ? '.' : rel);
  }
  return ok(out);
}

/** A pathspec (what follows `--`) and the environment that makes git read it as meant. */
export interface Pathspec {
  args: string[];
  env: Record<string, string> | undefined;
}

/**
 * The pathspec of a command that reads the work tree, keeping Keel's own files (the jail's denied
 * paths inside the repository) out of it, so `git add --all`, `git status` or a stash never take up a
 * state dir. Without any, the paths as given (git reads every pathspec literally, GIT_LITERAL_PATHSPECS).
 * With some, pathspec magic is switched on for this command to exclude them, and every given path is
 * marked `:(literal)` so it still means only itself; an empty pathspec becomes the whole tree.
 */
export function withoutOwnFiles(repo: Repo, paths: readonly string[]): Pathspec {
  const excludes = repo.jail
    .deniedWithin(repo.top)
    .map((real) => `:(exclude,literal)${path.relative(repo.top, real).split(path.sep).join('/')}`);
  if (excludes.length === 0) return { args: [...paths], env: undefined };
  return {
    args: [...(paths.length === 0 ? ['.'] : paths.map((entry) => `:(literal)${entry}`)), ...excludes],
    env: { GIT_LITERAL_PATHSPECS: '0' },
  };
}

/** Resolves a revision to the commit it names, without ever letting it be read as an option. */
export async function resolveCommit(repo: Repo, ref: string, field: string): Promise<Outcome<string>> {
  const refused = refuseOptionLike(ref, field);
  if (!refused.ok) return refused;
  const result = await repo.git(['rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`]);
  const sha = result.stdout.trim();
  if (result.exitCode !== 0 || !/^[0-9a-f]{40,64}$/.test(sha)) {
    const branches = await branchNames(repo);
    return fail('NOT_FOUND', `${field} '${ref}' does not name a commit in '${repo.display}'`, {
      hint:
        branches.length > 0
          ? `Existing branches: ${branches.slice(0, 20).join(', ')}${branches.length > 20 ? ', …' : ''}.`
          : 'The repository has no commits yet.',
      details: { field, ref },
    });
  }
  return ok(sha);
}

export async function branchNames(repo: Repo): Promise<string[]> {
  const result = await repo.git(['for-each-ref', '--format=%(refname:short)', 'refs/heads/'], {
    maxOutputBytes: 1024 * 1024,
  });
  return result.exitCode === 0 ? result.stdout.split('\n').filter(Boolean) : [];
}

/**
 * The checked-out branch, or undefined when HEAD is detached. Read from HEAD itself when it is a plain
 * branch ref or a sha; anything else is left to `git symbolic-ref`. The name is the ref without
 * `refs/heads/` (not git's `--short`, which would answer `heads/x` when a tag `x` also exists).
 */
export async function currentBranch(repo: Repo): Promise<string | undefined> {
  const head = readHead(repo);
  if (head !== null) return 'ref' in head ? head.ref.slice('refs/heads/'.length) : undefined;
  const result = await repo.git(['symbolic-ref', '--quiet', 'HEAD']);
  const name = result.stdout.trim();
  if (result.exitCode !== 0 || name.length === 0) return undefined;
  return name.startsWith('refs/heads/') ? name.slice('refs/heads/'.length) : name;
}

/**
 * HEAD's commit, or undefined on an unborn branch. Read from the ref files when they are plain (a
 * loose or packed branch ref), which saves a git process on every log page; anything unusual is
 * left to `git rev-parse`.
 */
export async function headSha(repo: Repo): Promise<string | undefined> {
  const direct = readHeadFiles(repo);
  if (direct !== null) return direct;
  const result = await repo.git(['rev-parse', '--verify', '--quiet', 'HEAD^{commit}']);
  const sha = result.stdout.trim();
  return result.exitCode === 0 && sha.length > 0 ? sha : undefined;
}

/** Checks a new branch or tag name the way git would, and refuses option-looking names first. */
export async function checkNewRefName(
  repo: Repo,
  name: string,
  kind: 'branch' | 'tag',
): Promise<Outcome<void>> {
  const refused = refuseOptionLike(name, kind);
  if (!refused.ok) return refused;
  const full = kind === 'branch' ? `refs/heads/${name}` : `refs/tags/${name}`;
  const result = await repo.git(['check-ref-format', full]);
  if (result.exitCode !== 0) {
    return fail('INVALID_ARGUMENT', `'${name}' is not a valid ${kind} name`, {
      hint: 'Use letters, digits, / . _ -; no spaces, no "..", no ~ ^ : ? * [ or \\, not ending in ".lock" or "/".',
      details: { field: kind === 'branch' ? 'name' : 'name' },
    });
  }
  return ok(undefined);
}

const sha1 = /^[0-9a-f]{40}$/;

/** Larger ref files are left to git: they are not plain refs, and reading them would cost more than a process. */
const maxRefFileBytes = 256 * 1024;

/**
 * HEAD from the files, or null when git must be asked; undefined when the branch is unborn.
 * Synchronous on purpose: these are a few small files in the git dir, read in microseconds, where each
 * asynchronous read would cost a thread-pool round trip (open, stat, read, close) on every log page.
 */
function readHeadFiles(repo: Repo): string | undefined | null {
  const head = readHead(repo);
  if (head === null) return null;
  if ('sha' in head) return head.sha;
  const ref = head.ref;
  const loose = readSmall(repo.jail, path.join(repo.commonDir, ref))?.trim();
  if (loose !== undefined) return sha1.test(loose) ? loose : null;
  const packed = readSmall(repo.jail, path.join(repo.commonDir, 'packed-refs'));
  if (packed === null) return null;
  for (const line of (packed ?? '').split('\n')) {
    if (line.endsWith(` ${ref}`)) {
      const sha = line.slice(0, line.indexOf(' '));
      return sha1.test(sha) ? sha : null;
    }
  }
  return undefined;
}

/**
 * HEAD's own file: a detached sha, a branch ref (`refs/heads/…`, each part a plain name), or null when
 * git must be asked (a missing or unusual HEAD, a ref elsewhere, reftable's placeholder `.invalid`).
 */
function readHead(repo: Repo): { sha: string } | { ref: string } | null {
  const head = readSmall(repo.jail, path.join(repo.gitDir, 'HEAD'))?.trim();
  if (head === undefined || head === null) return null;
  if (sha1.test(head)) return { sha: head };
  const ref = /^ref: (refs\/heads\/[A-Za-z0-9._/-]+)$/.exec(head)?.[1];
  if (ref === undefined || ref.includes('..') || ref.endsWith('.lock') || ref.endsWith('/')) return null;
  if (ref.split('/').some((part) => part.length === 0 || part.startsWith('.'))) return null;
  return { ref };
}

/**
 * A small regular file's text; undefined when it does not exist, null when git must be asked (large,
 * not a regular file, a symlink, or outside the roots). Opened through the jail, which neither follows
 * a link nor waits on a FIFO planted as a ref, and re-checks where the descriptor really is.
 */
export function readSmall(jail: PathJail, file: string): string | undefined | null {
  let fd: number;
  try {
    const opened = jail.openSync(file, fsConstants.O_RDONLY);
    if (!opened.ok) return null;
    fd = opened.value;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : null;
  }
  try {
    const info = fstatSync(fd);
    if (!info.isFile() || info.size > maxRefFileBytes) return null;
    const buffer = Buffer.allocUnsafe(info.size);
    let filled = 0;
    while (filled < info.size) {
      const read = readSync(fd, buffer, filled, info.size - filled, filled);
      if (read === 0) break;
      filled += read;
    }
    return buffer.toString('utf8', 0, filled);
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}
