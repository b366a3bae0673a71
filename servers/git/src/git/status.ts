/** One changed path as porcelain v2 reports it. */
export interface StatusEntry {
  group: 'staged' | 'unstaged' | 'untracked' | 'conflicted';
  path: string;
  status: string;
  origPath?: string;
}

export interface BranchState {
  head: string | null;
  oid: string | null;
  upstream?: string;
  ahead?: number;
  behind?: number;
}

const letters: Record<string, string> = {
  M: 'modified',
  T: 'typechange',
  A: 'added',
  D: 'deleted',
  R: 'renamed',
  C: 'copied',
  U: 'unmerged',
};

/** Parses `git status --porcelain=v2 --branch -z`. Paths are taken whole: after the fixed fields, the rest is the path. */
export function parsePorcelainV2(output: string): { branch: BranchState; entries: StatusEntry[] } {
  const branch: BranchState = { head: null, oid: null };
  const entries: StatusEntry[] = [];
  const tokens = output.split('\0');
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (token.length === 0) continue;
    const kind = token[0];
    if (kind === '#') {
      const [, key, ...rest] = token.split(' ');
      const value = rest.join(' ');
      if (key === 'branch.oid') branch.oid = value === '(initial)' ? null : value;
      else if (key === 'branch.head') branch.head = value === '(detached)' ? null : value;
      else if (key === 'branch.upstream') branch.upstream = value;
      else if (key === 'branch.ab') {
        const match = /^\+(\d+) -(\d+)$/.exec(value);
        if (match !== null) {
          branch.ahead = Number(match[1]);
          branch.behind = Number(match[2]);
        }
      }
    } else if (kind === '1' || kind === '2' || kind === 'u') {
      const fixed = kind === '1' ? 8 : kind === '2' ? 9 : 10;
      const parts = token.split(' ');
      const xy = parts[1] ?? '..';
      const file = parts.slice(fixed).join(' ');
      if (kind === 'u') {
        entries.push({ group: 'conflicted', path: file, status: xy });
        continue;
      }
      const origPath = kind === '2' ? tokens[++i] : undefined;
      const x = xy[0] ?? '.';
      const y = xy[1] ?? '.';
      if (x !== '.')
        entries.push({
          group: 'staged',
          path: file,
          status: letters[x] ?? x,
          ...(origPath === undefined ? {} : { origPath }),
        });
      if (y !== '.') entries.push({ group: 'unstaged', path: file, status: letters[y] ?? y });
    } else if (kind === '?') {
      entries.push({ group: 'untracked', path: token.slice(2), status: 'untracked' });
    }
  }
  return { branch, entries };
}
