import { defineTool, ok, type AnyTool } from '@keel/kit';
import * as z from 'zod';
import { repoArg } from '../git/args.js';
import type { ResolvedGitOptions } from '../git/options.js';
import { listWorktrees } from '../git/worktree.js';
import { repoOf } from '../git/withRepo.js';

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
export function gitWorktreeListTool(options: ResolvedGitOptions): AnyTool {
  return defineTool({
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
      const opened = await repoOf(ctx, options);
      if (!opened.ok) return opened;
      const entries = (await listWorktrees(opened.value)).slice(0, 1000);
      return ok({
        repo: opened.value.display,
        worktrees: entries.map(({ bare: _bare, ...entry }) => ({
          ...entry,
          path: ctx.jail.contains(entry.path) ? ctx.jail.display(entry.path) : entry.path,
        })),
      });
    },
  });
}
