import { isUtf8 } from 'node:buffer';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, read, readSync } from 'node:fs';
import { link, lstat, mkdir, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  fail,
  ok,
  ownFileDenied,
  type Outcome,
  type PathJail,
  type ResolvedPath,
  type ToolError,
} from '@keel/kit';

export function sha256Of(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Git's heuristic: a NUL byte in the first 8 KiB means binary. */
export function looksBinary(head: Buffer): boolean {
  return head.subarray(0, 8192).includes(0);
}

/**
 * Whether bytes are text a tool can hand back (or edit) as UTF-8 without losing one: no NUL in the
 * first 8 KiB and valid UTF-8 throughout. `cut`: the bytes stop mid-file, so a character split at
 * their end does not count against them. Anything else decoded as UTF-8 would come back with
 * replacement characters in place of its bytes.
 */
export function isUtf8Text(bytes: Buffer, cut = false): boolean {
  if (looksBinary(bytes)) return false;
  if (isUtf8(bytes)) return true;
  if (!cut) return false;
  const tail = incompleteTail(bytes);
  return tail > 0 && isUtf8(bytes.subarray(0, bytes.length - tail));
}

/** How many bytes at the end start a multi-byte character the bytes do not finish (0 if none). */
function incompleteTail(bytes: Buffer): number {
  for (let back = 1; back <= Math.min(3, bytes.length); back++) {
    const byte = bytes[bytes.length - back]!;
    if ((byte & 0xc0) === 0x80) continue;
    const needs = byte >= 0xf0 && byte <= 0xf4 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc2 ? 2 : 1;
    return needs > back ? back : 0;
  }
  return 0;
}

/** Maps the errors a file operation can meet to structured errors naming the path. */
export function fsError(error: unknown, shown: string, doing: string): Outcome<never> {
  const code = (error as NodeJS.ErrnoException).code ?? '';
  switch (code) {
    case 'ENOENT':
      return fail('NOT_FOUND', `cannot ${doing} '${shown}': it does not exist`, {
        hint: 'Check the path; list the parent directory to see what is there.',
      });
    case 'EACCES':
    case 'EPERM':
      return fail('PERMISSION_DENIED', `cannot ${doing} '${shown}': permission denied`, {
        hint: 'The server process lacks permission on this path.',
      });
    case 'EISDIR':
      return fail('INVALID_ARGUMENT', `cannot ${doing} '${shown}': it is a directory`, {
        hint: 'Use list_directory or tree for directories.',
      });
    case 'ENOTDIR':
      return fail('INVALID_ARGUMENT', `cannot ${doing} '${shown}': a parent is not a directory`, {
        hint: 'A path component is a file; check the path.',
      });
    case 'EEXIST':
    case 'ENOTEMPTY':
      return fail('ALREADY_EXISTS', `cannot ${doing} '${shown}': it already exists`, {
        hint: 'Choose another path, or pass overwrite: true where the tool offers it.',
      });
    case 'ENOSPC':
      return fail('RESOURCE_LIMIT', `cannot ${doing} '${shown}': no space left on the device`, {
        retryable: true,
      });
    case 'EXDEV':
      return fail(
        'INVALID_ARGUMENT',
        `cannot ${doing} '${shown}': source and destination are on different filesystems`,
        {
          hint: 'Copy the content with read_file and write_file, then delete the source.',
        },
      );
    default:
      throw error;
  }
}

/** Opens a jailed path for reading; the descriptor is re-checked against the roots (see PathJail.open). */
export async function openForRead(
  jail: PathJail,
  resolved: ResolvedPath,
  shown: string,
): Promise<Outcome<FileHandle>> {
  try {
    return await jail.open(resolved, constants.O_RDONLY);
  } catch (error) {
    return fsError(error, shown, 'read');
  }
}

/** Files the edit tools load whole; larger ones are refused rather than pulled into memory. */
export const editableFileLimit = 32 * 1024 * 1024;

/** Reads a whole jailed file, up to `maxBytes`. */
export async function readWhole(
  jail: PathJail,
  resolved: ResolvedPath,
  shown: string,
  maxBytes = editableFileLimit,
): Promise<Outcome<Buffer>> {
  const opened = await openForRead(jail, resolved, shown);
  if (!opened.ok) return opened;
  try {
    const info = await opened.value.stat();
    if (info.isDirectory())
      return fsError(Object.assign(new Error('dir'), { code: 'EISDIR' }), shown, 'read');
    if (!info.isFile()) {
      return fail('INVALID_ARGUMENT', `'${shown}' is not a regular file`, {
        hint: 'Edit regular files; stat shows what a path is.',
      });
    }
    if (info.size > maxBytes) {
      return fail(
        'RESOURCE_LIMIT',
        `file '${shown}' is ${info.size} bytes, over the ${maxBytes}-byte limit for whole-file edits`,
        {
          hint: 'Edit it with other tools; read_file can still read it in windows.',
        },
      );
    }
    const data = Buffer.allocUnsafe(info.size);
    let filled = 0;
    while (filled < data.length) {
      const { bytesRead } = await opened.value.read(data, filled, data.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return ok(data.subarray(0, filled));
  } catch (error) {
    return fsError(error, shown, 'read');
  } finally {
    await opened.value.close();
  }
}

export interface AtomicWriteOptions {
  /** `create`: fail if the file exists (decided atomically by link(2)); `overwrite`: replace it. */
  mode: 'create' | 'overwrite';
  /** Permission bits for a new file; an overwritten file keeps its own. */
  fileMode?: number;
}

/** The temp file an atomic write makes beside its target: `.NAME.keel-<12 hex>.tmp`. */
const tempNamePattern = /^\..+\.keel-[0-9a-f]{12}\.tmp$/;

/** True for the name of an atomic write's temp file: never a user file, so no listing shows it. */
export function isWriteTemp(name: string): boolean {
  return tempNamePattern.test(name);
}

/** A temp file this old was left by a writer that died (kill -9): a live write renames far sooner. */
const staleTempMs = 60_000;

/**
 * Removes the temp files that earlier writes of `target` left behind when killed mid-write. Only
 * ones older than a minute: a write in flight in another process keeps its own.
 */
async function removeStaleTemps(target: string): Promise<void> {
  const dir = path.dirname(target);
  const prefix = `.${path.basename(target)}.keel-`;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  const now = Date.now();
  for (const name of names) {
    if (!name.startsWith(prefix) || !isWriteTemp(name)) continue;
    const file = path.join(dir, name);
    const info = await lstat(file).catch(() => undefined);
    if (info?.isFile() === true && now - info.mtimeMs > staleTempMs)
      await unlink(file).catch(() => undefined);
  }
}

/**
 * Writes a file so that a reader (or a crash) sees the old content or the new, never a mix: the data
 * goes to a temp file in the same directory, opened through the jail, fsynced, then renamed over the
 * target (or linked, for create-only, so an existing file is never replaced).
 */
export async function atomicWrite(
  jail: PathJail,
  target: ResolvedPath,
  data: Buffer,
  shown: string,
  options: AtomicWriteOptions,
): Promise<Outcome<{ created: boolean }>> {
  const dir = path.dirname(target.real);
  const temp: ResolvedPath = {
    real: path.join(dir, `.${path.basename(target.real)}.keel-${randomBytes(6).toString('hex')}.tmp`),
    exists: false,
    root: target.root,
  };
  let existingMode: number | undefined;
  let existed = false;
  try {
    const info = await stat(target.real);
    if (info.isDirectory())
      return fsError(Object.assign(new Error('dir'), { code: 'EISDIR' }), shown, 'write');
    existingMode = info.mode & 0o7777;
    existed = true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return fsError(error, shown, 'write');
  }
  if (options.mode === 'create' && existed) {
    return fail('ALREADY_EXISTS', `file '${shown}' already exists`, {
      hint: "Pass mode: 'overwrite' (with expectedSha256 to guard against lost updates), or pick another path.",
    });
  }
  let handle: FileHandle;
  try {
    const opened = await jail.open(
      temp,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL,
      existingMode ?? options.fileMode ?? 0o644,
    );
    if (!opened.ok) {
      // O_CREAT already made the file where the swapped path led before the descriptor check refused it.
      // The name is random and O_EXCL made it ours, so removing it removes nothing else.
      if (opened.error.code === 'OUTSIDE_ROOTS') await unlink(temp.real).catch(() => undefined);
      return opened;
    }
    handle = opened.value;
  } catch (error) {
    return fsError(error, shown, 'write');
  }
  let renamed = false;
  try {
    await handle.writeFile(data);
    if (existingMode !== undefined) await handle.chmod(existingMode);
    await handle.sync();
    await handle.close();
    if (options.mode === 'create') {
      try {
        await link(temp.real, target.real);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP')
          return fsError(error, shown, 'create');
        // No hard links on this filesystem: check, then rename (a narrow race instead of none).
        if ((await lstat(target.real).catch(() => undefined)) !== undefined)
          return fsError(Object.assign(new Error('exists'), { code: 'EEXIST' }), shown, 'create');
        await rename(temp.real, target.real);
        renamed = true;
      }
    } else {
      await rename(temp.real, target.real);
      renamed = true;
    }
    await syncDirectory(dir);
    await removeStaleTemps(target.real);
    return ok({ created: !existed });
  } catch (error) {
    return fsError(error, shown, 'write');
  } finally {
    await handle.close().catch(() => undefined);
    if (!renamed) await unlink(temp.real).catch(() => undefined);
  }
}

/** Makes a rename durable: the directory entry is on disk once its directory is synced. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY).catch(() => undefined);
  if (handle === undefined) return;
  await handle.sync().catch(() => undefined);
  await handle.close();
}

/** Creates the missing parents of a jailed path, re-checking the jail after (a parent may have been swapped). */
export async function ensureParents(
  jail: PathJail,
  target: ResolvedPath,
  shown: string,
): Promise<Outcome<void>> {
  const dir = path.dirname(target.real);
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    return fsError(error, shown, 'create the parent directories of');
  }
  const again = await jail.resolve(dir);
  if (!again.ok) return again;
  return ok(undefined);
}

/** Whether a directory exists (no throw). */
export async function parentExists(real: string): Promise<boolean> {
  try {
    return (await stat(path.dirname(real))).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The directory entry a path names, without following a final symlink: the parent resolved in the
 * jail plus the last name. Delete and move act on the entry, so removing a link never removes what it points to.
 */
export async function entryOf(
  jail: PathJail,
  input: string,
): Promise<Outcome<{ entry: string; root: string; isLink: boolean; exists: boolean }>> {
  const absolute = path.resolve(
    jail.roots[0] ?? '/',
    input.startsWith('file://') ? fileURLToPath(input) : input,
  );
  if (jail.roots.includes(absolute)) {
    return fail('INVALID_ARGUMENT', `path '${input}' is a root`, {
      hint: 'A root itself cannot be moved or deleted; name something inside it.',
    });
  }
  const name = path.basename(absolute);
  const parent = await jail.resolve(path.dirname(absolute));
  if (!parent.ok) return parent;
  const entry = path.join(parent.value.real, name);
  // The entry itself is not resolved (a link is acted on as a link), so it is held to the deny here.
  if (jail.isDenied(entry)) return ownFileDenied(input);
  const info = await lstat(entry).catch(() => undefined);
  return ok({
    entry,
    root: parent.value.root,
    isLink: info?.isSymbolicLink() === true,
    exists: info !== undefined,
  });
}

export type SmallRead = { kind: 'text'; data: Buffer } | { kind: 'binary' | 'tooLarge' | 'unreadable' };

/**
 * Opens a file for reading through the kit's synchronous, re-checked open (PathJail.openSync): small
 * reads are dominated by thread-pool round trips. The jail's own refusal (OUTSIDE_ROOTS) when the
 * path led out of the roots, else the system error.
 */
export function openSyncChecked(
  jail: PathJail,
  real: string,
): { fd: number } | { refused: ToolError } | { error: NodeJS.ErrnoException } {
  try {
    const opened = jail.openSync(real, constants.O_RDONLY);
    return opened.ok ? { fd: opened.value } : { refused: opened.error };
  } catch (error) {
    return { error: error as NodeJS.ErrnoException };
  }
}

/** A descriptor as a positional reader through the thread pool (for reads too long to block on). */
export function asyncReader(fd: number): {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
} {
  return {
    read: (buffer, offset, length, position) =>
      new Promise((resolve, reject) =>
        read(fd, buffer, offset, length, position, (error, bytesRead) =>
          error === null ? resolve({ bytesRead }) : reject(error),
        ),
      ),
  };
}

/** A descriptor as a positional reader (reads run synchronously). */
export function syncReader(fd: number): {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
} {
  return {
    read: async (buffer, offset, length, position) => ({
      bytesRead: readSync(fd, buffer, offset, length, position),
    }),
  };
}

/**
 * Reads a small file synchronously, re-checking the descriptor. A content search opens tens of
 * thousands of small files; callers yield to the event loop between slices of files.
 */
export function readSmallFileSync(jail: PathJail, real: string, maxBytes: number): SmallRead {
  const opened = openSyncChecked(jail, real);
  if (!('fd' in opened)) return { kind: 'unreadable' };
  const fd = opened.fd;
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) return { kind: 'unreadable' };
    if (info.size > maxBytes) return { kind: 'tooLarge' };
    const data = Buffer.allocUnsafe(info.size);
    let filled = 0;
    while (filled < data.length) {
      const read = readSync(fd, data, filled, data.length - filled, filled);
      if (read === 0) break;
      filled += read;
    }
    const content = data.subarray(0, filled);
    return looksBinary(content) ? { kind: 'binary' } : { kind: 'text', data: content };
  } catch {
    return { kind: 'unreadable' };
  } finally {
    closeSync(fd);
  }
}
