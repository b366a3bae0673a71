import {
  closeSync,
  constants as fsConstants,
  fstatSync,
  lstatSync,
  openSync,
  readlinkSync,
  realpathSync,
  statSync,
  type Stats,
} from 'node:fs';
import { open, realpath, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { fail, KeelError, ok, type Outcome, type ToolError } from './errors.js';

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
 * contained by whole path segments, so `/srv/app-evil` is not inside `/srv/app`. Keel's own files
 * (the state directory, keys, configuration: `denied`) are refused inside the roots too, judged on
 * the same real paths, so no `..`, symlink or worktree path reaches them.
 */
export interface PathJail {
  readonly roots: readonly string[];
  /** Real paths no tool may touch, though they may lie inside a root (Keel's own files). */
  readonly denied: readonly string[];
  /** Whether a real path is a denied path or lies inside one. */
  isDenied(realPath: string): boolean;
  /** The denied paths at or under a real directory (what removing or moving it would reach). */
  deniedWithin(realDir: string): readonly string[];
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
  open(target: ResolvedPath | string, flags: number, mode?: number): Promise<Outcome<FileHandle>>;
  /**
   * `open` without the thread pool, for small reads where the round trip dominates. Takes a real
   * path from `resolve`; returns the descriptor, which the caller closes.
   */
  openSync(target: ResolvedPath | string, flags: number, mode?: number): Outcome<number>;
  /** The path as a person reads it: relative to its root when there is one root, else absolute. */
  display(realPath: string): string;
}

/** The hint of every refusal of Keel's own files, so each tool says the same thing. */
export const OWN_FILES_HINT =
  "Keel's own files (its state, keys, configuration and task files) are off limits to every tool; work with the project's other files.";

/** The refusal of a path that is one of Keel's own files (a jail's denied path), as `path` was given. */
export function ownFileDenied(input: string): { ok: false; error: ToolError } {
  return fail('PERMISSION_DENIED', `path '${input}' is one of Keel's own files`, {
    hint: OWN_FILES_HINT,
    details: { path: input },
  });
}

const maxLinkHops = 40;
// Every open adds these: never through a symlink (the swap race), and never waiting on a FIFO, which
// would block a thread-pool thread, or with openSync the whole server, until a writer came. On a
// regular file O_NONBLOCK changes nothing.
const noFollowNoWait = fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK;

export interface PathJailOptions {
  /**
   * Paths no tool may read, write, list or find, though they lie inside a root: a server's state
   * directory, its keys, the configuration Keel reads. Judged by real path (a path that does not
   * exist yet by where it would be); a root inside one of them is refused.
   */
  deny?: readonly string[];
}

/**
 * Builds a jail from configured roots; each must exist and be a directory. A root that lies inside
 * a denied path is refused (KeelError INVALID_ARGUMENT): every path of it would be off limits.
 */
export async function createPathJail(
  roots: readonly string[],
  options: PathJailOptions = {},
): Promise<PathJail> {
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
  const denied: string[] = [];
  for (const entry of options.deny ?? []) {
    const real = realpathAllowingMissing(path.resolve(entry), 0).real;
    if (!denied.includes(real)) denied.push(real);
  }
  for (const root of realRoots) {
    const holder = denied.find((entry) => isInside(entry, root));
    if (holder !== undefined) {
      throw new KeelError(
        'INVALID_ARGUMENT',
        `root '${root}' lies inside '${holder}', which holds Keel's own files`,
        {
          hint: 'Keep the state directory (--state-dir) and every --deny-path outside the roots, or pick another root.',
        },
      );
    }
  }
  return jailOf(realRoots, denied);
}

function isInside(root: string, candidate: string): boolean {
  const rel = path.relative(root, candidate);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

function jailOf(roots: readonly string[], denied: readonly string[]): PathJail {
  const rootOf = (real: string) => roots.find((root) => isInside(root, real));
  const isDenied = (real: string) => denied.some((entry) => isInside(entry, real));
  const outside = (input: string, why: string) =>
    fail('OUTSIDE_ROOTS', `path '${input}' ${why}`, {
      hint:
        roots.length === 0
          ? 'No root is in force (the client roots do not overlap the server roots); nothing can be accessed.'
          : `Use a path inside the roots: ${roots.join(', ')}.`,
      details: { roots: [...roots] },
    });

  // What an open descriptor really is: /proc names it on Linux; elsewhere the descriptor must be the
  // file the checked path is now. Synchronous: these are metadata look-ups, not I/O worth a thread.
  const descriptorInside = (fd: number, real: string): boolean => {
    let opened: string | undefined;
    try {
      opened = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      const byFd = fstatSync(fd);
      const byPath = statSync(real, { throwIfNoEntry: false });
      if (byPath !== undefined && byPath.ino === byFd.ino && byPath.dev === byFd.dev)
        opened = realpathSync(real);
    }
    return opened !== undefined && rootOf(opened) !== undefined && !isDenied(opened);
  };

  const jail: PathJail = {
    roots,
    denied,
    isDenied,
    deniedWithin: (dir) => denied.filter((entry) => isInside(dir, entry)),
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
        real = realpathAllowingMissing(absolute, 0);
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
      if (isDenied(real.real)) return ownFileDenied(input);
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
      return jailOf(narrowed, denied);
    },

    async open(target, flags, mode) {
      const real = typeof target === 'string' ? target : target.real;
      if (isDenied(real)) return ownFileDenied(real);
      let handle: FileHandle;
      try {
        handle = await open(real, flags | noFollowNoWait, mode);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ELOOP') return outside(real, 'became a symlink after it was checked');
        throw error;
      }
      if (!descriptorInside(handle.fd, real)) {
        await handle.close();
        if (isDenied(real)) return ownFileDenied(real);
        return outside(real, 'changed to point outside the roots while it was being opened');
      }
      return ok(handle);
    },

    openSync(target, flags, mode) {
      const real = typeof target === 'string' ? target : target.real;
      if (isDenied(real)) return ownFileDenied(real);
      let fd: number;
      try {
        fd = openSync(real, flags | noFollowNoWait, mode);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ELOOP') return outside(real, 'became a symlink after it was checked');
        throw error;
      }
      if (!descriptorInside(fd, real)) {
        closeSync(fd);
        if (isDenied(real)) return ownFileDenied(real);
        return outside(real, 'changed to point outside the roots while it was being opened');
      }
      return ok(fd);
    },
  };
  return jail;
}

/**
 * realpath that also answers for paths that do not exist yet: the nearest existing ancestor is
 * resolved and the missing tail appended, and a dangling symlink is followed to where it would
 * create the file, so a link to `/etc/x` that does not exist yet is still judged by its target.
 *
 * Synchronous on purpose. Every tool call resolves its paths, and on a local disk the system calls
 * take a few microseconds while a thread-pool round trip costs tens of them, several times over on
 * a loaded two-core machine; a path on a stalled network mount would stall the async version's
 * thread just the same.
 */
function realpathAllowingMissing(absolute: string, hops: number): { real: string; exists: boolean } {
  if (hops > maxLinkHops) throw Object.assign(new Error('too many symlinks'), { code: 'ELOOP' });
  try {
    return { real: realpathSync.native(absolute), exists: true };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw error;
  }
  const parent = path.dirname(absolute);
  if (parent === absolute) return { real: absolute, exists: false };
  const realParent = realpathAllowingMissing(parent, hops);
  const entry = path.join(realParent.real, path.basename(absolute));
  if (realParent.exists) {
    const info = lstatOrUndefined(entry);
    if (info?.isSymbolicLink()) {
      const target = path.resolve(realParent.real, readlinkSync(entry));
      const followed = realpathAllowingMissing(target, hops + 1);
      return { real: followed.real, exists: false };
    }
  }
  return { real: entry, exists: false };
}

/** lstat, or undefined when the entry cannot be examined (missing, or a parent that is a file). */
function lstatOrUndefined(entry: string): Stats | undefined {
  try {
    return lstatSync(entry);
  } catch {
    return undefined;
  }
}
