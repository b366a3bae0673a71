import { realpath } from 'node:fs/promises';
import { fail, ok, OWN_FILES_HINT } from '@keel/kit';
import * as z from 'zod';
import { repoArg } from '../git/args.js';
import { gitFailure } from '../git/runGit.js';
import { listWorktrees } from '../git/worktree.js';
import { defineRepoTool, type GitTool } from '../git/withRepo.js';

/** `git_worktree_remove`: deletes a linked work tree; `force` also throws away its uncommitted changes. */
export function gitWorktreeRemoveTool(): GitTool {
  return defineRepoTool({
    name: 'git_worktree_remove',
    title: 'Remove a git worktree',
    description:
      'Removes a linked work tree and its directory (its branch stays). Refuses when it has uncommitted changes unless `force: true`, which loses them. The main work tree cannot be removed.',
    input: z.object({
      repo: repoArg,
      path: z
        .string()
        .min(1)
        .max(4096)
        .describe('The linked work tree to remove: relative to the first root, or absolute inside a root.'),
      force: z.boolean().default(false).describe('Remove even with uncommitted changes (they are lost).'),
    }),
    output: z.object({ repo: z.string(), path: z.string(), branch: z.string().nullable() }),
    effect: 'destructive',
    paths: { repo: 'existing', path: 'existing' },
    render: (out) =>
      `removed worktree ${out.path}${out.branch === null ? '' : ` (branch ${out.branch} kept)`}`,
    plan: async (input, ctx) => {
      const repo = ctx.prepared;
      const target = ctx.paths.path.real;
      const trees = await listWorktrees(repo);
      const reals = await Promise.all(trees.map((tree) => realpath(tree.path).catch(() => tree.path)));
      const entry = trees.find((_tree, index) => reals[index] === target);
      if (entry === undefined) {
        return fail('NOT_FOUND', `'${input.path}' is not a work tree of '${repo.display}'`, {
          hint: `Work trees: ${trees.map((tree) => ctx.jail.display(tree.path)).join(', ')}.`,
        });
      }
      if (entry.main)
        return fail('INVALID_ARGUMENT', `'${input.path}' is the main work tree`, {
          hint: 'Only linked work trees can be removed.',
        });
      // Removing the directory removes everything in it, Keel's files among them if they were there.
      const own = ctx.jail.deniedWithin(target)[0];
      if (own !== undefined)
        return fail(
          'PERMISSION_DENIED',
          `'${input.path}' holds '${ctx.jail.display(own)}', one of Keel's own files`,
          {
            hint: OWN_FILES_HINT,
          },
        );
      return ok({
        effect: () => ({ files: [{ path: target, change: 'delete' as const, tree: true }] }),
        apply: async () => {
          const result = await repo.git(['worktree', 'remove', ...(input.force ? ['--force'] : []), target]);
          if (result.exitCode !== 0)
            return gitFailure(
              `git worktree remove '${input.path}'`,
              result,
              'Commit or stash its changes, or pass force: true to lose them.',
            );
          return ok({ repo: repo.display, path: ctx.jail.display(target), branch: entry.branch });
        },
      });
    },
  });
}
