import type { Manifest, ManifestEntry } from './manifest.js';

/** A symlink of a build whose target, followed as the release will follow it, is not in the build. */
export interface LeavingLink {
  path: string;
  target: string;
  /** `absolute`: the target is an absolute path; `outside`: it climbs above the build's top. */
  leaves: 'absolute' | 'outside';
}

/** As many links as the kernel follows in one path before it gives up (ELOOP). */
const maxLinkHops = 40;

/**
 * The build's symlinks that lead out of it. Each target is resolved the way the kernel would inside
 * the release (a copy of exactly these entries): component by component from the link's directory,
 * through the build's own links, `..` climbing from where a link led rather than from its text.
 * So `m -> a/l/../..` with `a/l -> ..` leaves, though it reads as the top. Components the build does
 * not hold are taken as written. A chain longer than the kernel follows resolves to nothing, so it
 * leaves nowhere.
 */
export function linksLeaving(manifest: Manifest): LeavingLink[] {
  const entries = new Map<string, ManifestEntry>();
  for (const entry of manifest.entries) entries.set(entry.path, entry);
  const leaving: LeavingLink[] = [];
  for (const entry of manifest.entries) {
    if (entry.kind !== 'symlink') continue;
    const target = entry.target ?? '';
    const leaves = resolveLeaves(entries, entry.path.split('/').slice(0, -1), target);
    if (leaves !== undefined) leaving.push({ path: entry.path, target, leaves });
  }
  return leaving;
}

function resolveLeaves(
  entries: ReadonlyMap<string, ManifestEntry>,
  from: string[],
  target: string,
): LeavingLink['leaves'] | undefined {
  if (target.startsWith('/')) return 'absolute';
  const at = [...from];
  const pending = target.split('/');
  for (let hops = 0; pending.length > 0;) {
    const part = pending.shift()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (at.length === 0) return 'outside';
      at.pop();
      continue;
    }
    const entry = entries.get([...at, part].join('/'));
    if (entry?.kind === 'symlink') {
      if (++hops > maxLinkHops) return undefined;
      const next = entry.target ?? '';
      if (next.startsWith('/')) return 'absolute';
      // A link's target is relative to the directory holding the link: `at`, unchanged.
      pending.unshift(...next.split('/'));
      continue;
    }
    at.push(part);
  }
  return undefined;
}
