import { ok } from '@keel/kit';
import * as z from 'zod';
import { repoArg } from '../git/args.js';
import { listWorktrees } from '../git/worktree.js';
import { defineRepoTool, type GitTool } from '../git/withRepo.js';

export const worktreeSchema = z.object({
  path: z.string(),
  head: z.string().nullable(),
  branch: z.string().nullable(),
  detached: z.boolean(),
  locked: z.boolean(),
  prunable: z.boolean(),
  main: z.boolean().describe('The main work tree (cannot be removed).'),
});

/** `git_worktree_list`: the main work tree and every linked one, with branch and commit. */
export function gitWorktreeListTool(): GitTool {
  return defineRepoTool({
    name: 'git_worktree_list',
    title: 'List git worktrees',
    description:
      'Lists the work trees of a repository (the main one first): path, checked-out branch, commit, locked/prunable.',
    input: z.object({ repo: repoArg }),
    output: z.object({ repo: z.string(), worktrees: z.array(worktreeSchema).max(1000) }),
    effect: 'read',
    paths: { repo: 'existing' },
    render: (out) =>
      out.worktrees
        .map(
          (tree) =>
            `${tree.path} ${tree.head?.slice(0, 12) ?? '(none)'} ${tree.branch === null ? '(detached)' : `[${tree.branch}]`}`,
        )
        .join('\n'),
    handler: async (_input, ctx) => {
      const entries = (await listWorktrees(ctx.prepared)).slice(0, 1000);
      return ok({
        repo: ctx.prepared.display,
        worktrees: entries.map(({ bare: _bare, ...entry }) => ({
          ...entry,
          path: ctx.jail.contains(entry.path) ? ctx.jail.display(entry.path) : entry.path,
        })),
      });
    },
  });
}
