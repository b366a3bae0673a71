import type { Repo } from './repo.js';

/** Every ref under `prefix` with its object, to tell what a fetch or pull changed. */
export async function snapshotRefs(repo: Repo, prefix: string): Promise<Map<string, string>> {
  const result = await repo.git(['for-each-ref', '--format=%(objectname) %(symref)%00%(refname)', prefix]);
  const refs = new Map<string, string>();
  for (const line of result.stdout.split('\n')) {
    // Symbolic refs (origin/HEAD) move with their target; only real refs are reported.
    const match = /^([0-9a-f]+) (.*?)\0(.+)$/.exec(line);
    if (match !== null && match[2] === '') refs.set(match[3]!, match[1]!);
  }
  return refs;
}

export interface RefChange {
  ref: string;
  from: string | null;
  to: string | null;
}

export function refChanges(before: Map<string, string>, after: Map<string, string>): RefChange[] {
  const changes: RefChange[] = [];
  for (const [ref, sha] of after)
    if (before.get(ref) !== sha) changes.push({ ref, from: before.get(ref) ?? null, to: sha });
  for (const [ref, sha] of before) if (!after.has(ref)) changes.push({ ref, from: sha, to: null });
  return changes.sort((a, b) => a.ref.localeCompare(b.ref));
}
