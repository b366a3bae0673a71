import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import { canonicalJson, KeelError, sha256Hex } from '@keel/kit';
import { quotedName } from '../text/names.js';

/** One entry of a build or release tree. Paths use `/` and are relative to the tree's top. */
export interface ManifestEntry {
  path: string;
  kind: 'file' | 'symlink' | 'dir';
  /** Bytes of a file; 0 for the other kinds. */
  size: number;
  /** Permission bits (file and dir); 0 for a symlink. */
  mode: number;
  /** Content hash of a file, or of a symlink's target; '' for a dir. */
  sha256: string;
  /** A symlink's target as written. */
  target?: string;
}

export interface Manifest {
  entries: ManifestEntry[];
  /** The hash of the canonical entries: equal trees, equal hashes. */
  hash: string;
  files: number;
  bytes: number;
}

const hashConcurrency = 8;

/** sha256 of a file's bytes, streamed. */
export function hashFile(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}

/**
 * Walks a build directory and hashes every file. Only regular files, directories and symlinks may
 * appear (a socket or device in a build is refused); at most `maxFiles` entries.
 */
export async function scanTree(root: string, maxFiles: number, signal?: AbortSignal): Promise<Manifest> {
  const entries: ManifestEntry[] = [];
  const pending: string[] = [''];
  while (pending.length > 0) {
    signal?.throwIfAborted();
    const relative = pending.pop()!;
    const names = await readdir(path.join(root, relative));
    for (const name of names) {
      const rel = relative === '' ? name : `${relative}/${name}`;
      const full = path.join(root, rel);
      const stat = await lstat(full);
      if (entries.length >= maxFiles) {
        throw new KeelError('RESOURCE_LIMIT', `the build '${root}' has more than ${maxFiles} entries`, {
          hint: 'Raise maxFiles in the deploy config, or deploy a smaller build output.',
        });
      }
      if (stat.isDirectory()) {
        entries.push({ path: rel, kind: 'dir', size: 0, mode: stat.mode & 0o7777, sha256: '' });
        pending.push(rel);
      } else if (stat.isFile()) {
        entries.push({ path: rel, kind: 'file', size: stat.size, mode: stat.mode & 0o7777, sha256: '' });
      } else if (stat.isSymbolicLink()) {
        const target = await readlink(full);
        entries.push({
          path: rel,
          kind: 'symlink',
          size: 0,
          mode: 0,
          sha256: sha256Hex(`symlink:${target}`),
          target,
        });
      } else {
        throw new KeelError(
          'PRECONDITION_FAILED',
          `the build holds ${quotedName(rel)}, which is not a file, directory or symlink`,
          {
            hint: 'Remove sockets, FIFOs and devices from the build output.',
          },
        );
      }
    }
  }
  const files = entries.filter((entry) => entry.kind === 'file');
  await forEachLimited(files, hashConcurrency, async (entry) => {
    signal?.throwIfAborted();
    entry.sha256 = await hashFile(path.join(root, entry.path));
  });
  return manifestOf(entries);
}

/** Orders entries and computes the tree hash and totals. */
export function manifestOf(entries: ManifestEntry[]): Manifest {
  entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  let files = 0;
  let bytes = 0;
  for (const entry of entries) {
    if (entry.kind === 'dir') continue;
    files++;
    bytes += entry.size;
  }
  return { entries, hash: sha256Hex(canonicalJson(entries)), files, bytes };
}

export interface DiffGroup {
  count: number;
  bytes: number;
  paths: string[];
}

export interface ManifestDiff {
  added: DiffGroup;
  changed: DiffGroup;
  removed: DiffGroup;
  unchanged: { count: number; bytes: number };
}

/** Whether two entries at one path have the same content and permissions (so one can be a hard link to the other). */
export function sameContent(a: ManifestEntry, b: ManifestEntry): boolean {
  return a.kind === b.kind && a.sha256 === b.sha256 && a.mode === b.mode && a.target === b.target;
}

/** Files and symlinks added, changed and removed going from `before` (null: nothing deployed) to `after`. */
export function diffManifests(before: Manifest | null, after: Manifest): ManifestDiff {
  const group = (): DiffGroup => ({ count: 0, bytes: 0, paths: [] });
  const diff: ManifestDiff = {
    added: group(),
    changed: group(),
    removed: group(),
    unchanged: { count: 0, bytes: 0 },
  };
  const old = new Map<string, ManifestEntry>();
  for (const entry of before?.entries ?? []) if (entry.kind !== 'dir') old.set(entry.path, entry);
  for (const entry of after.entries) {
    if (entry.kind === 'dir') continue;
    const previous = old.get(entry.path);
    old.delete(entry.path);
    const into =
      previous === undefined ? diff.added : sameContent(previous, entry) ? undefined : diff.changed;
    if (into === undefined) {
      diff.unchanged.count++;
      diff.unchanged.bytes += entry.size;
    } else {
      into.count++;
      into.bytes += entry.size;
      into.paths.push(entry.path);
    }
  }
  for (const entry of old.values()) {
    diff.removed.count++;
    diff.removed.bytes += entry.size;
    diff.removed.paths.push(entry.path);
  }
  return diff;
}

/** Runs `work` over `items` with at most `limit` in flight; the first failure rejects. */
export async function forEachLimited<TItem>(
  items: readonly TItem[],
  limit: number,
  work: (item: TItem) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed = false;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (!failed && next < items.length) {
      const item = items[next++]!;
      try {
        await work(item);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  });
  // Every lane settles before this returns, so nothing still writes once a caller cleans up.
  const results = await Promise.allSettled(lanes);
  const rejected = results.find((result) => result.status === 'rejected');
  if (rejected !== undefined) throw rejected.reason;
}
