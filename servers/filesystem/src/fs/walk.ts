import type { Dirent } from 'node:fs';
import { lstatSync, readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { PathJail } from '@keel/kit';
import type { Ignore } from 'ignore';
import { ignore } from '../util/lazy.js';
import type { FsPolicy } from './policy.js';
import { relativeOf } from './policy.js';
import { isWriteTemp } from './files.js';

export type EntryType = 'file' | 'directory' | 'symlink' | 'other';

export interface WalkEntry {
  /** Relative to the walk's base, with forward slashes. */
  rel: string;
  real: string;
  type: EntryType;
  /** 1 for the base's direct children. */
  depth: number;
}

export interface WalkOptions {
  /** The real directory to walk (inside `root`). */
  base: string;
  root: string;
  policy: FsPolicy;
  /** The call's jail: Keel's own files (its `denied` paths) are left out like denied globs. */
  jail: PathJail;
  /** Skip what `.gitignore` files (from the root down) ignore, and `.git` itself. */
  gitignore: boolean;
  /** Include names starting with a dot. */
  hidden: boolean;
  /** Deepest level to list (1 = only the base's children). */
  maxDepth: number;
  order: 'depth-first' | 'breadth-first';
  signal: AbortSignal;
  /** Leaves an entry (and, for a directory, everything under it) out of the walk. */
  skip?: (rel: string, type: EntryType) => boolean;
  /** Called for each directory listed at `maxDepth` whose children are not visited. */
  onDepthLimit?: (entry: WalkEntry) => void;
}

interface IgnoreScope {
  /** The directory the rules belong to, relative to the root. */
  dir: string;
  rules: Ignore;
}

const prefetchLimit = 32;

/**
 * Walks a directory tree in a stable order (names sorted by code point), never following symlinks,
 * skipping denied paths, hidden names and gitignored entries as asked. Directory reads are started
 * ahead of the iteration, so a walk of a large tree is not bound by one readdir at a time, while the
 * order stays fixed — cursors over walks rely on that.
 */
export async function* walk(options: WalkOptions): AsyncGenerator<WalkEntry> {
  const reads = new Map<string, Promise<Dirent[] | undefined>>();
  let inFlight = 0;
  const readDir = (dir: string): Promise<Dirent[] | undefined> => {
    let pending = reads.get(dir);
    if (pending === undefined) {
      inFlight++;
      pending = readdir(dir, { withFileTypes: true })
        .then((entries) => entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)))
        .catch(() => undefined)
        .finally(() => inFlight--);
      reads.set(dir, pending);
    }
    return pending;
  };
  const take = (dir: string) => {
    const pending = readDir(dir);
    reads.delete(dir);
    return pending;
  };
  const prefetch = (dir: string) => {
    if (inFlight < prefetchLimit && !reads.has(dir)) void readDir(dir);
  };

  const baseScopes = options.gitignore ? await ancestorScopes(options.root, options.base) : [];

  const listChildren = async (
    dirReal: string,
    dirRel: string,
    depth: number,
    scopes: readonly IgnoreScope[],
  ): Promise<{ children: WalkEntry[]; scopes: readonly IgnoreScope[] }> => {
    const dirents = await take(dirReal);
    if (dirents === undefined) return { children: [], scopes };
    let inScope = scopes;
    if (options.gitignore) {
      const file = dirents.find((d) => d.name === '.gitignore' && d.isFile());
      if (file !== undefined) {
        const text = await readFile(path.join(dirReal, '.gitignore'), 'utf8').catch(() => '');
        inScope = [...scopes, { dir: relativeOf(options.root, dirReal), rules: ignore()().add(text) }];
      }
    }
    const children: WalkEntry[] = [];
    for (const dirent of dirents) {
      const name = dirent.name;
      const real = path.join(dirReal, name);
      const type: EntryType = dirent.isDirectory()
        ? 'directory'
        : dirent.isFile()
          ? 'file'
          : dirent.isSymbolicLink()
            ? 'symlink'
            : 'other';
      const rel = dirRel === '' ? name : `${dirRel}/${name}`;
      if (leftOut(options, inScope, { name, real, rel, type })) continue;
      children.push({ rel, real, type, depth });
    }
    for (const child of children)
      if (child.type === 'directory' && depth < options.maxDepth) prefetch(child.real);
    return { children, scopes: inScope };
  };

  if (options.order === 'depth-first') {
    async function* visit(
      dirReal: string,
      dirRel: string,
      depth: number,
      scopes: readonly IgnoreScope[],
    ): AsyncGenerator<WalkEntry> {
      if (options.signal.aborted) return;
      const listed = await listChildren(dirReal, dirRel, depth, scopes);
      for (const child of listed.children) {
        yield child;
        if (child.type !== 'directory') continue;
        if (depth < options.maxDepth) yield* visit(child.real, child.rel, depth + 1, listed.scopes);
        else options.onDepthLimit?.(child);
      }
    }
    yield* visit(options.base, '', 1, baseScopes);
    return;
  }

  const queue: Array<{ real: string; rel: string; depth: number; scopes: readonly IgnoreScope[] }> = [
    { real: options.base, rel: '', depth: 1, scopes: baseScopes },
  ];
  while (queue.length > 0) {
    if (options.signal.aborted) return;
    const next = queue.shift()!;
    const listed = await listChildren(next.real, next.rel, next.depth, next.scopes);
    for (const child of listed.children) {
      yield child;
      if (child.type !== 'directory') continue;
      if (next.depth < options.maxDepth)
        queue.push({ real: child.real, rel: child.rel, depth: next.depth + 1, scopes: listed.scopes });
      else options.onDepthLimit?.(child);
    }
  }
}

/** Whether the walk leaves an entry out (and, for a directory, everything under it). */
function leftOut(
  options: WalkRules,
  scopes: readonly IgnoreScope[],
  entry: { name: string; real: string; rel: string; type: EntryType },
): boolean {
  const { name, real } = entry;
  if (!options.hidden && name.startsWith('.')) return true;
  // A write killed mid-way leaves its temp file; it is not the user's.
  if (isWriteTemp(name)) return true;
  if (options.gitignore && name === '.git') return true;
  const rootRel = relativeOf(options.root, real);
  if (options.policy.isDenied(rootRel) || options.jail.isDenied(real)) return true;
  if (options.gitignore && ignoredBy(scopes, rootRel, entry.type === 'directory')) return true;
  return options.skip?.(entry.rel, entry.type) === true;
}

/** The rules of a tool call's walk of a resolved directory: the server's policy, the call's jail and choices. */
export function callWalkRules(
  resolved: { real: string; root: string },
  policy: FsPolicy,
  jail: PathJail,
  input: { gitignore: boolean; hidden: boolean },
): WalkRules {
  return {
    base: resolved.real,
    root: resolved.root,
    policy,
    jail,
    gitignore: input.gitignore,
    hidden: input.hidden,
  };
}

/** What decides whether the walk yields an entry: the walk's options without its order and limits. */
export type WalkRules = Pick<
  WalkOptions,
  'base' | 'root' | 'policy' | 'jail' | 'gitignore' | 'hidden' | 'skip'
>;

/**
 * Whether the walk would yield a regular file, given its path relative to the base: the same rules
 * applied to it and to every directory above it, with the same `.gitignore` files. For paths found
 * by another lister (ripgrep), so that it never shows what the walk would not.
 */
export async function walkAdmitsFile(rules: WalkRules): Promise<(rel: string) => boolean> {
  const baseScopes = rules.gitignore ? await ancestorScopes(rules.root, rules.base) : [];
  // The scopes in force for a directory's children, by its path relative to the base.
  const scopesOf = new Map<string, readonly IgnoreScope[]>();
  const childScopes = (dirRel: string, parent: readonly IgnoreScope[]): readonly IgnoreScope[] => {
    let scopes = scopesOf.get(dirRel);
    if (scopes === undefined) {
      scopes = parent;
      const dirReal = dirRel === '' ? rules.base : path.join(rules.base, dirRel);
      const file = path.join(dirReal, '.gitignore');
      // As the walk: only a regular .gitignore file counts.
      if (rules.gitignore && lstatSync(file, { throwIfNoEntry: false })?.isFile() === true) {
        let text = '';
        try {
          text = readFileSync(file, 'utf8');
        } catch {
          // Unreadable: no rules, as in the walk.
        }
        scopes = [...parent, { dir: relativeOf(rules.root, dirReal), rules: ignore()().add(text) }];
      }
      scopesOf.set(dirRel, scopes);
    }
    return scopes;
  };
  return (rel) => {
    const parts = rel.split('/');
    let scopes = childScopes('', baseScopes);
    let dirRel = '';
    for (let i = 0; i < parts.length; i++) {
      const name = parts[i]!;
      const entryRel = dirRel === '' ? name : `${dirRel}/${name}`;
      const type: EntryType = i === parts.length - 1 ? 'file' : 'directory';
      const real = path.join(rules.base, entryRel);
      if (leftOut(rules, scopes, { name, real, rel: entryRel, type })) return false;
      if (type === 'directory') scopes = childScopes(entryRel, scopes);
      dirRel = entryRel;
    }
    return true;
  };
}

function ignoredBy(scopes: readonly IgnoreScope[], rootRel: string, isDir: boolean): boolean {
  let ignored = false;
  for (const scope of scopes) {
    if (scope.dir !== '' && !rootRel.startsWith(`${scope.dir}/`)) continue;
    const rel = scope.dir === '' ? rootRel : rootRel.slice(scope.dir.length + 1);
    // Later (deeper) files override earlier ones, including re-including with `!`.
    const result = scope.rules.test(isDir ? `${rel}/` : rel);
    if (result.ignored) ignored = true;
    else if (result.unignored) ignored = false;
  }
  return ignored;
}

/** The .gitignore rules of the root and every directory above the walk's base. */
async function ancestorScopes(root: string, base: string): Promise<IgnoreScope[]> {
  const scopes: IgnoreScope[] = [];
  const rel = relativeOf(root, base);
  const dirs = [root];
  if (rel !== '') {
    let current = root;
    const parts = rel.split('/');
    for (const part of parts.slice(0, -1)) {
      current = path.join(current, part);
      dirs.push(current);
    }
  }
  // The base's own .gitignore is loaded by the walk itself.
  const ancestors = rel === '' ? [] : dirs;
  for (const dir of ancestors) {
    const text = await readFile(path.join(dir, '.gitignore'), 'utf8').catch(() => undefined);
    if (text !== undefined) scopes.push({ dir: relativeOf(root, dir), rules: ignore()().add(text) });
  }
  return scopes;
}

/** Sorts relative paths so that a directory's contents follow it (for display). */
export function comparePaths(a: string, b: string): number {
  const pa = a.split('/');
  const pb = b.split('/');
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i]! !== pb[i]!) return pa[i]! < pb[i]! ? -1 : 1;
  }
  return pa.length - pb.length;
}
