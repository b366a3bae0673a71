import { constants as fsConstants } from 'node:fs';
import { lstat, open, readlink, realpath, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fail, KeelError, ok, type Outcome } from './errors.js';

export interface ResolvedPath {
  /** The real path (symlinks resolved), inside a root. */
  real: string;
  /** False for a path that does not exist yet (checked through its nearest existing ancestor). */
  exists: boolean;
  /** The root that contains it. */
  root: string;
}

/**
 * Confines every path a tool touches to the server's roots. Paths are resolved to real paths
 * (every symlink, including parent directories and dangling links, followed and re-checked) and
 * contained by whole path segments, so `/srv/app-evil` is not inside `/srv/app`.
 */
export interface PathJail {
  readonly roots: readonly string[];
  /** Resolves `input` (relative to `base`, else the first root) to a real path inside the roots. */
  resolve(input: string, options?: { base?: string }): Promise<Outcome<ResolvedPath>>;
  /** Whether an already-real path is inside the roots. */
  contains(realPath: string): boolean;
  /** A jail whose roots are the intersection with `clientRoots` (paths or file:// URIs): never wider. */
  narrow(clientRoots: readonly string[]): Promise<PathJail>;
  /**
   * Opens a resolved path and re-checks the opened file descriptor itself, so a symlink swapped in
   * between `resolve` and `open` cannot lead outside the roots.
   */
  open(resolved: ResolvedPath, flags: number, mode?: number): Promise<Outcome<FileHandle>>;
  /** The path as a person reads it: relative to its root when there is one root, else absolute. */
  display(realPath: string): string;
}

const maxLinkHops = 40;

/** Builds a jail from configured roots; each must exist and be a directory. */
export async function createPathJail(roots: readonly string[]): Promise<PathJail> {
  const realRoots: string[] = [];
  for (const root of roots) {
    let real: string;
    try {
      real = await realpath(path.resolve(root));
    } catch (error) {
      throw new KeelError('NOT_FOUND', `root '${root}' does not exist`, {
        hint: 'Pass an existing directory to --root.',
        cause: error,
      });
    }
    if (!(await stat(real)).isDirectory()) {
      throw new KeelError('INVALID_ARGUMENT', `root '${root}' is not a directory`, {
        hint: 'Roots are directories.',
      });
    }
    if (!realRoots.includes(real)) realRoots.push(real);
  }
  return jailOf(realRoots);
}

function isInside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

function jailOf(roots: readonly string[]): PathJail {
  const rootOf = (real: string) => roots.find((root) => isInside(root, real));
  const outside = (input: string, why: string) =>
    fail('OUTSIDE_ROOTS', `path '${input}' ${why}`, {
      hint:
        roots.length === 0
          ? 'No root is in force (the client roots do not overlap the server roots); nothing can be accessed.'
          : `Use a path inside the roots: ${roots.join(', ')}.`,
      details: { roots: [...roots] },
    });

  const jail: PathJail = {
    roots,
    contains: (real) => rootOf(real) !== undefined,
    display(real) {
      const root = rootOf(real);
      if (root === undefined || roots.length > 1) return real;
      return path.relative(root, real) || '.';
    },

    async resolve(input, options = {}) {
      if (typeof input !== 'string' || input.length === 0) {
        return fail('INVALID_ARGUMENT', 'path is empty', {
          hint: 'Pass a path relative to a root, or an absolute path inside one.',
        });
      }
      if (input.includes('\0')) return outside(input.replaceAll('\0', '\\0'), 'contains a NUL byte');
      let candidate = input;
      if (candidate.startsWith('file://')) {
        try {
          candidate = fileURLToPath(candidate);
        } catch {
          return fail('INVALID_ARGUMENT', `path '${input}' is not a valid file:// URI`, {
            hint: 'Pass a plain path.',
          });
        }
      }
      if (/^[A-Za-z]:([\\/]|$)/.test(candidate) || candidate.includes('\\')) {
        return outside(input, 'is a Windows-style path, which this server does not accept');
      }
      const base = options.base ?? roots[0];
      if (base === undefined) return outside(input, 'cannot be resolved: no root is in force');
      const absolute = path.resolve(base, candidate);
      let real: { real: string; exists: boolean };
      try {
        real = await realpathAllowingMissing(absolute, 0);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ELOOP')
          return fail('INVALID_ARGUMENT', `path '${input}' has a symlink loop`, {
            hint: 'Fix or remove the looping link.',
          });
        if (code === 'EACCES') {
          return fail('PERMISSION_DENIED', `path '${input}' cannot be resolved: permission denied`, {
            hint: 'The server process lacks permission on a directory along this path.',
          });
        }
        throw error;
      }
      const root = rootOf(real.real);
      if (root === undefined) return outside(input, 'resolves outside the roots');
      return ok({ real: real.real, exists: real.exists, root });
    },

    async narrow(clientRoots) {
      const narrowed: string[] = [];
      for (const clientRoot of clientRoots) {
        let real: string;
        try {
          const plain = clientRoot.startsWith('file://') ? fileURLToPath(clientRoot) : clientRoot;
          if (!path.isAbsolute(plain)) continue;
          real = await realpath(plain);
        } catch {
          continue; // A client root that does not exist here grants nothing.
        }
        for (const root of roots) {
          const overlap = isInside(root, real) ? real : isInside(real, root) ? root : undefined;
          if (overlap !== undefined && !narrowed.includes(overlap)) narrowed.push(overlap);
        }
      }
      return jailOf(narrowed);
    },

    async open(resolved, flags, mode) {
      let handle: FileHandle;
      try {
        handle = await open(resolved.real, flags | fsConstants.O_NOFOLLOW, mode);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ELOOP') return outside(resolved.real, 'became a symlink after it was checked');
        throw error;
      }
      let opened: string | undefined;
      try {
        opened = await realpath(`/proc/self/fd/${handle.fd}`);
      } catch {
        // No /proc (not Linux): compare the descriptor with what the checked path is now.
        const [byHandle, byPath] = await Promise.all([
          handle.stat(),
          stat(resolved.real).catch(() => undefined),
        ]);
        if (byPath !== undefined && byPath.ino === byHandle.ino && byPath.dev === byHandle.dev)
          opened = await realpath(resolved.real);
      }
      if (opened === undefined || rootOf(opened) === undefined) {
        await handle.close();
        return outside(resolved.real, 'changed to point outside the roots while it was being opened');
      }
      return ok(handle);
    },
  };
  return jail;
}

/**
 * realpath that also answers for paths that do not exist yet: the nearest existing ancestor is
 * resolved and the missing tail appended, and a dangling symlink is followed to where it would
 * create the file, so a link to `/etc/x` that does not exist yet is still judged by its target.
 */
async function realpathAllowingMissing(
  absolute: string,
  hops: number,
): Promise<{ real: string; exists: boolean }> {
  if (hops > maxLinkHops) throw Object.assign(new Error('too many symlinks'), { code: 'ELOOP' });
  try {
    return { real: await realpath(absolute), exists: true };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw error;
  }
  const parent = path.dirname(absolute);
  if (parent === absolute) return { real: absolute, exists: false };
  const realParent = await realpathAllowingMissing(parent, hops);
  const entry = path.join(realParent.real, path.basename(absolute));
  if (realParent.exists) {
    const info = await lstat(entry).catch(() => undefined);
    if (info?.isSymbolicLink()) {
      const target = path.resolve(realParent.real, await readlink(entry));
      const followed = await realpathAllowingMissing(target, hops + 1);
      return { real: followed.real, exists: false };
    }
  }
  return { real: entry, exists: false };
}
