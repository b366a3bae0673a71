import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fail, ok, OWN_FILES_HINT, type Outcome, type PathJail } from '@keel/kit';
import { picomatch } from '../util/lazy.js';

/** The filesystem server's own rules on top of the jail. */
export interface FilesystemOptions {
  /** Allow writes inside `.git/` directories (off by default: a writable `.git/config` is code execution for any git tool). */
  allowGitWrites?: boolean;
  /** Globs (relative to a root) that no tool may read, write or list. */
  deny?: readonly string[];
  /**
   * The ripgrep search_text runs to pick the files worth reading: a path to `rg`, `false` for the
   * JavaScript search alone, or undefined (the default) for `rg` on the PATH when there is one.
   */
  ripgrep?: string | false;
  /**
   * A search_text walk that meets fewer files than this is searched by JavaScript, which finishes
   * a small tree before ripgrep would have started (default 500: the measured crossover).
   */
  ripgrepMinFiles?: number;
}

/**
 * What the server refuses beyond the jail: deny globs (for every access, and hidden from listings)
 * and writes into `.git/`. Paths are judged relative to their root, after symlinks are resolved.
 */
export interface FsPolicy {
  readonly allowGitWrites: boolean;
  readonly deny: readonly string[];
  /** Whether a path relative to its root is hidden by a deny glob (for walks). */
  isDenied(relative: string): boolean;
  checkRead(real: string, root: string, shown: string): Outcome<void>;
  checkWrite(real: string, root: string, shown: string): Outcome<void>;
  /**
   * Everything under a directory a call removes or moves, held to the write policy: Keel's own files
   * (the jail's denied paths), a denied file or a `.git/` inside `dir` refuses the whole call.
   * Bounded; a tree too big to check is refused too.
   */
  checkTree(dir: string, root: string, jail: PathJail): Promise<Outcome<void>>;
}

/** How many entries under a directory are checked before a tree operation is refused as too big. */
export const maxTreeCheckEntries = 100_000;

export function createFsPolicy(options: FilesystemOptions = {}): FsPolicy {
  const deny = [...(options.deny ?? [])];
  const matchers = deny.map((glob) => ({ glob, test: picomatch()(glob, { dot: true }) }));
  const allowGitWrites = options.allowGitWrites === true;

  // A glob denies a path when it matches the path or any directory above it, so `secrets` covers `secrets/a.txt`.
  const denyingGlob = (relative: string): string | undefined => {
    if (relative === '' || matchers.length === 0) return undefined;
    const parts = relative.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const prefix = parts.slice(0, i).join('/');
      const hit = matchers.find((m) => m.test(prefix));
      if (hit !== undefined) return hit.glob;
    }
    return undefined;
  };

  const checkRead = (real: string, root: string, shown: string): Outcome<void> => {
    const glob = denyingGlob(relativeOf(root, real));
    if (glob === undefined) return ok(undefined);
    return fail('PERMISSION_DENIED', `path '${shown}' is denied by the server's deny glob '${glob}'`, {
      hint: 'This path is off limits by server configuration (--deny); work with other files.',
      details: { path: shown, glob },
    });
  };

  const checkWrite = (real: string, root: string, shown: string): Outcome<void> => {
    const read = checkRead(real, root, shown);
    if (!read.ok) return read;
    if (
      !allowGitWrites &&
      relativeOf(root, real)
        .split('/')
        .some((part) => part.toLowerCase() === '.git')
    ) {
      return fail(
        'PERMISSION_DENIED',
        `path '${shown}' is inside a .git directory, which this server does not write`,
        {
          hint: 'Use the git tools for repository changes. Writes into .git/ (hooks, config) would let any git command run arbitrary code; the server operator can allow them with --allow-git-writes.',
          details: { path: shown },
        },
      );
    }
    return ok(undefined);
  };

  return {
    allowGitWrites,
    deny,
    isDenied: (relative) => denyingGlob(relative) !== undefined,
    checkRead,
    checkWrite,
    async checkTree(dir, root, jail) {
      const display = (real: string) => jail.display(real);
      const own = jail.deniedWithin(dir)[0];
      if (own !== undefined) {
        return fail(
          'PERMISSION_DENIED',
          `'${display(dir)}' contains '${display(own)}', one of Keel's own files, which no tool may remove or move`,
          {
            hint: `${OWN_FILES_HINT} Remove or move the other entries one by one.`,
            details: { path: display(dir), blockedBy: display(own) },
          },
        );
      }
      if (matchers.length === 0 && allowGitWrites) return ok(undefined);
      let seen = 0;
      const pending = [dir];
      while (pending.length > 0) {
        const current = pending.pop()!;
        const entries = await readdir(current, { withFileTypes: true }).catch(() => []);
        for (const entry of entries) {
          if (++seen > maxTreeCheckEntries) {
            return fail(
              'RESOURCE_LIMIT',
              `'${display(dir)}' holds more than ${maxTreeCheckEntries} entries to check against the server's policy`,
              {
                hint: 'Remove or move its contents in smaller parts.',
              },
            );
          }
          const real = path.join(current, entry.name);
          const verdict = checkWrite(real, root, display(real));
          if (!verdict.ok) {
            return fail(
              'PERMISSION_DENIED',
              `'${display(dir)}' contains '${display(real)}', which this server may not remove or move: ${verdict.error.message}`,
              {
                ...(verdict.error.hint === undefined ? {} : { hint: verdict.error.hint }),
                details: { path: display(dir), blockedBy: display(real) },
              },
            );
          }
          // Symlinks are removed or moved as links; what they point at is untouched.
          if (entry.isDirectory()) pending.push(real);
        }
      }
      return ok(undefined);
    },
  };
}

/** A real path relative to its root, with forward slashes ('' for the root itself). */
export function relativeOf(root: string, real: string): string {
  return path.relative(root, real).split(path.sep).join('/');
}
