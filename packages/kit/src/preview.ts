import { createHash } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';
import * as z from 'zod';
import { canonicalJson, sha256Hex } from './canonical.js';
import { ok, type Outcome } from './errors.js';
import { ownFileDenied, type PathJail } from './jail.js';

import {
  CHANGES_NO_FILES_META_KEY,
  EXPECT_PREVIEW_META_KEY,
  PREVIEW_META_KEY,
  REFUSED_PREVIEW_BINDING,
} from './previewKeys.js';

export { CHANGES_NO_FILES_META_KEY, EXPECT_PREVIEW_META_KEY, PREVIEW_META_KEY, REFUSED_PREVIEW_BINDING };

/** What happens to one file. */
export const effectChanges = ['create', 'modify', 'delete', 'rename', 'copy', 'mode'] as const;
export type EffectChange = (typeof effectChanges)[number];

/** One file a call would change, as its preview reports it. */
export interface EffectFile {
  /** Absolute real path (symlinks resolved through the jail): for a rename or copy, the new file. */
  path: string;
  change: EffectChange;
  /** For a rename or copy: the absolute real path of the source (a rename removes it). */
  from?: string;
  linesAdded: number;
  linesRemoved: number;
  /** The content is binary: its line counts are 0 and say nothing. */
  binary?: boolean;
  /** The entry is a directory (one created, or an empty one removed). */
  directory?: boolean;
  /**
   * The file as it is now: the sha256 of its bytes (of its target text for a symlink, of its sorted
   * entry names as JSON for a directory, of `size:mtime:inode` for a file over 64 MiB), or null when
   * nothing is there.
   */
  sha256Before: string | null;
  /** For a rename or copy: `sha256Before` of the source. */
  fromSha256Before?: string | null;
}

/**
 * What a call would change, computed by the code that applies it, without changing anything. The
 * `binding` fingerprints the state the effect was computed from; a real call carrying it in
 * `_meta["keel/expect-preview"]` is refused if that state changed meanwhile.
 */
export interface EffectPreview {
  /** False when the list is not the whole effect (a cap was reached, or the tool cannot know it all); `reason` says why. */
  complete: boolean;
  reason?: string;
  files: EffectFile[];
  /**
   * A fact that makes the call irreversible beyond the files listed, where the server knows one (a
   * push publishes commits; a non-fast-forward push rewrites a remote branch).
   */
  irreversible?: string;
  /** Other state the effect depends on, as `name value` lines (git refs and the commits they name). */
  basis?: string[];
  /**
   * sha256 (hex) of the canonical JSON of `{ files: [[path, sha256Before, from, fromSha256Before]]
   * (sorted; null where absent), basis }` — see `previewBinding`.
   */
  binding: string;
}

export const effectFileSchema = z.object({
  path: z.string().describe('Absolute real path of the file (for a rename or copy, the new one).'),
  change: z.enum(effectChanges),
  from: z.string().optional().describe('For a rename or copy: absolute real path of the source.'),
  linesAdded: z.number().int().min(0),
  linesRemoved: z.number().int().min(0),
  binary: z.boolean().optional(),
  directory: z.boolean().optional(),
  sha256Before: z.string().nullable().describe('sha256 of the file as it is now; null when absent.'),
  fromSha256Before: z.string().nullable().optional(),
});

export const effectPreviewSchema = z.object({
  complete: z.boolean().describe('False when the list is not the whole effect; reason says why.'),
  reason: z.string().optional(),
  files: z.array(effectFileSchema),
  irreversible: z.string().optional().describe('What makes the call irreversible beyond these files.'),
  basis: z.array(z.string()).optional().describe('Other state the effect depends on (refs, commits).'),
  binding: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .describe('Send as _meta["keel/expect-preview"] to refuse the call if this state changed.'),
});

/** The structured result of a preview call: `{ preview }`. */
export const previewResultSchema = z.object({ preview: effectPreviewSchema });

/** A file a tool's plan changes; the kit adds what the file is now (hash, and lines for a delete). */
export interface PlannedFile {
  /** Absolute real path (from the jail): for a rename or copy, the destination. */
  path: string;
  change: EffectChange;
  /** For a rename or copy, the source's absolute real path. */
  from?: string;
  /** Default 0; for a delete, the lines of the file now. */
  linesAdded?: number;
  linesRemoved?: number;
  /** Default: whether the file now looks binary (a NUL in its first 8 KiB). */
  binary?: boolean;
  directory?: boolean;
  /**
   * A directory whose every entry the change covers (a recursive delete, a directory moved): the
   * kit lists the entries under `from` (rename, copy) or `path` (delete), each with this change.
   */
  tree?: boolean;
}

/** What a tool's plan says it would change. */
export interface PlannedEffect {
  files: readonly PlannedFile[];
  /** Default true. False when the tool cannot know the whole effect; say why in `reason`. */
  complete?: boolean;
  reason?: string;
  irreversible?: string;
  basis?: readonly string[];
}

/**
 * A checked, ready call: what it would change, and how to carry it out. A tool that declares `plan`
 * instead of `handler` gets previews for free; the kit applies a plan by calling `apply`, and
 * previews it by calling `effect` alone, so the preview is computed by the code that applies.
 */
export interface ToolPlan<TOutput> {
  /** The effect, computed only when asked (a preview, or a call bound to one). Changes nothing. */
  effect(): PlannedEffect | Promise<PlannedEffect>;
  /** Carries the plan out. */
  apply(): Promise<Outcome<TOutput>>;
}

/** The binding of a list of files and a basis (see `EffectPreview.binding`). */
export function previewBinding(preview: Pick<EffectPreview, 'files' | 'basis'>): string {
  const files = preview.files
    .map((file) => [file.path, file.sha256Before, file.from ?? null, file.fromSha256Before ?? null])
    .sort((a, b) => compare(JSON.stringify(a), JSON.stringify(b)));
  return sha256Hex(canonicalJson({ files, basis: preview.basis ?? [] }));
}

export interface FinishOptions {
  jail: PathJail;
  signal: AbortSignal;
  /** The most files a preview lists; past it `complete` is false. */
  maxFiles: number;
}

/** Files larger than this are fingerprinted by size, mtime and inode instead of hashed. */
const maxHashedBytes = 64 * 1024 * 1024;
const chunkBytes = 1024 * 1024;

/**
 * Turns a plan's effect into the preview a client gets: trees expanded to their entries (up to
 * `maxFiles`), each file's state now read (hash, and lines for what a delete removes), sorted by
 * path, and bound. Reads go through the jail's re-checked open.
 */
export async function finishPreview(
  planned: PlannedEffect,
  options: FinishOptions,
): Promise<Outcome<EffectPreview>> {
  let complete = planned.complete ?? true;
  let reason = planned.reason;
  const expanded: PlannedFile[] = [];
  const capped = () => {
    if (complete || reason === undefined)
      reason = `more than ${options.maxFiles} files would change; the preview lists the first ${options.maxFiles}`;
    complete = false;
  };
  for (const file of planned.files) {
    if (expanded.length >= options.maxFiles) {
      capped();
      break;
    }
    if (file.tree !== true) {
      expanded.push(file);
      continue;
    }
    const full = await expandTree(file, options.maxFiles - expanded.length);
    expanded.push(...full.files);
    if (full.more) {
      capped();
      break;
    }
  }
  const files: EffectFile[] = [];
  for (const file of expanded) {
    if (options.signal.aborted) break;
    // A plan resolves its paths through the jail; this only keeps a defective one from reading Keel's files.
    const own = [file.path, file.from].find((real) => real !== undefined && options.jail.isDenied(real));
    if (own !== undefined) return ownFileDenied(options.jail.display(own));
    const before = await stateOf(file.path, options.jail);
    if (!before.ok) return before;
    const source = file.from === undefined ? undefined : await stateOf(file.from, options.jail);
    if (source !== undefined && !source.ok) return source;
    const removes = file.change === 'delete';
    const binary =
      file.binary ?? (removes ? before.value.binary : (source?.value.binary ?? before.value.binary));
    files.push({
      path: file.path,
      change: file.change,
      ...(file.from === undefined ? {} : { from: file.from }),
      linesAdded: binary ? 0 : (file.linesAdded ?? 0),
      linesRemoved: binary ? 0 : (file.linesRemoved ?? (removes ? before.value.lines : 0)),
      ...(binary ? { binary: true } : {}),
      ...(file.directory === true || before.value.directory ? { directory: true } : {}),
      sha256Before: before.value.sha256,
      ...(source === undefined ? {} : { fromSha256Before: source.value.sha256 }),
    });
  }
  files.sort((a, b) => compare(a.path, b.path) || compare(a.from ?? '', b.from ?? ''));
  const basis = planned.basis === undefined ? undefined : [...planned.basis];
  return ok({
    complete,
    ...(reason === undefined ? {} : { reason }),
    files,
    ...(planned.irreversible === undefined ? {} : { irreversible: planned.irreversible }),
    ...(basis === undefined ? {} : { basis }),
    binding: previewBinding({ files, ...(basis === undefined ? {} : { basis }) }),
  });
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The entries under a tree change, depth-first in name order, symlinks as themselves (never
 * followed), empty directories as directory entries. A tree that is not a directory is itself.
 */
async function expandTree(file: PlannedFile, room: number): Promise<{ files: PlannedFile[]; more: boolean }> {
  const source = file.change === 'delete' ? file.path : (file.from ?? file.path);
  const { tree: _tree, ...plain } = file;
  const info = await lstat(source).catch(() => undefined);
  if (info === undefined) return { files: [], more: false };
  if (!info.isDirectory()) return { files: [plain], more: false };
  const files: PlannedFile[] = [];
  const visit = async (dir: string): Promise<boolean> => {
    const names = (await readdir(dir).catch(() => [] as string[])).sort(compare);
    if (names.length === 0 && dir !== source) {
      if (files.length >= room) return false;
      files.push(entryFor(plain, source, dir, true));
      return true;
    }
    for (const name of names) {
      const entry = path.join(dir, name);
      const entryInfo = await lstat(entry).catch(() => undefined);
      if (entryInfo === undefined) continue;
      if (entryInfo.isDirectory()) {
        if (!(await visit(entry))) return false;
        continue;
      }
      if (files.length >= room) return false;
      files.push(entryFor(plain, source, entry, false));
    }
    return true;
  };
  const whole = await visit(source);
  // An empty directory removed or moved is still a change.
  if (whole && files.length === 0) files.push({ ...plain, directory: true });
  return { files, more: !whole };
}

function entryFor(file: PlannedFile, source: string, entry: string, directory: boolean): PlannedFile {
  const rel = path.relative(source, entry);
  const { linesAdded: _added, linesRemoved: _removed, ...rest } = file;
  const moved =
    file.change === 'delete'
      ? { ...rest, path: entry }
      : { ...rest, path: path.join(file.path, rel), from: entry };
  return directory ? { ...moved, directory: true } : moved;
}

interface FileState {
  sha256: string | null;
  lines: number;
  binary: boolean;
  directory: boolean;
}

const absent: FileState = { sha256: null, lines: 0, binary: false, directory: false };

/** What is at a real path now, without following a final symlink. */
async function stateOf(real: string, jail: PathJail): Promise<Outcome<FileState>> {
  let info: Stats;
  try {
    info = await lstat(real);
  } catch {
    return ok(absent);
  }
  if (info.isSymbolicLink())
    return ok({ sha256: sha256Hex(await readlink(real)), lines: 0, binary: false, directory: false });
  if (info.isDirectory()) {
    const names = (await readdir(real).catch(() => [] as string[])).sort(compare);
    return ok({ sha256: sha256Hex(JSON.stringify(names)), lines: 0, binary: false, directory: true });
  }
  if (!info.isFile() || info.size > maxHashedBytes) {
    const stamp = `${info.size}:${info.mtimeMs}:${info.ino}`;
    return ok({ sha256: sha256Hex(stamp), lines: 0, binary: !info.isFile(), directory: false });
  }
  const opened = await jail.open(real, constants.O_RDONLY);
  if (!opened.ok) return opened;
  const handle = opened.value;
  try {
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(Math.min(chunkBytes, Math.max(1, info.size)));
    let position = 0;
    let lines = 0;
    let last = -1;
    let binary = false;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) break;
      const chunk = buffer.subarray(0, bytesRead);
      hash.update(chunk);
      if (position < 8192 && chunk.subarray(0, 8192 - position).includes(0)) binary = true;
      for (let at = chunk.indexOf(0x0a); at !== -1; at = chunk.indexOf(0x0a, at + 1)) lines++;
      last = chunk[bytesRead - 1]!;
      position += bytesRead;
    }
    // A last line without a newline is a line too.
    if (last !== -1 && last !== 0x0a) lines++;
    return ok({ sha256: hash.digest('hex'), lines, binary, directory: false });
  } finally {
    await handle.close();
  }
}
