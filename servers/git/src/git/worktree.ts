import type { Repo } from './repo.js';

export interface WorktreeEntry {
  path: string;
  head: string | null;
  branch: string | null;
  detached: boolean;
  bare: boolean;
  locked: boolean;
  prunable: boolean;
  main: boolean;
}

/** Parses `git worktree list --porcelain -z`: attribute tokens, one empty token between worktrees. */
export function parseWorktreeList(output: string): WorktreeEntry[] {
  const entries: WorktreeEntry[] = [];
  let current: WorktreeEntry | undefined;
  for (const token of output.split('\0')) {
    if (token.startsWith('worktree ')) {
      current = {
        path: token.slice(9),
        head: null,
        branch: null,
        detached: false,
        bare: false,
        locked: false,
        prunable: false,
        main: entries.length === 0,
      };
      entries.push(current);
    } else if (current !== undefined) {
      if (token.startsWith('HEAD ')) current.head = token.slice(5);
      else if (token.startsWith('branch ')) current.branch = token.slice(7).replace(/^refs\/heads\//, '');
      else if (token === 'detached') current.detached = true;
      else if (token === 'bare') current.bare = true;
      else if (token === 'locked' || token.startsWith('locked ')) current.locked = true;
      else if (token === 'prunable' || token.startsWith('prunable ')) current.prunable = true;
    }
  }
  return entries;
}

export async function listWorktrees(repo: Repo): Promise<WorktreeEntry[]> {
  const result = await repo.git(['worktree', 'list', '--porcelain', '-z']);
  return result.exitCode === 0 ? parseWorktreeList(result.stdout) : [];
}
