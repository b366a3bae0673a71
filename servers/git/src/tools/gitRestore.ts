import { ok } from '@keel/kit';
import * as z from 'zod';
import { headSha, pathsArg, repoArg, repoPaths } from '../git/args.js';
import { gitFailure } from '../git/runGit.js';
import { effectOf, leavesWorkTree, treeChanges, valueOf } from '../git/effect.js';
import { defineRepoTool, type GitTool } from '../git/withRepo.js';

/** `git_restore`: unstages paths, or discards their working-tree changes (which loses them: destructive). */
export function gitRestoreTool(): GitTool {
  return defineRepoTool({
    name: 'git_restore',
    title: 'Unstage or discard changes',
    description:
      'mode "unstage": takes paths out of the index (their edits stay in the working tree). mode "discard": throws away the working-tree edits of paths, restoring them from the index — this loses work and cannot be undone.',
    input: z.object({
      repo: repoArg,
      paths: pathsArg.min(1),
      mode: z
        .enum(['unstage', 'discard'])
        .describe('"unstage" (keep the edits) or "discard" (lose the edits).'),
    }),
    output: z.object({ repo: z.string(), mode: z.enum(['unstage', 'discard']), paths: z.array(z.string()) }),
    effect: 'destructive',
    idempotent: true,
    paths: { repo: 'existing' },
    render: (out) =>
      `${out.mode === 'unstage' ? 'unstaged' : 'discarded changes in'}: ${out.paths.join(', ')}`,
    plan: async (input, ctx) => {
      const repo = ctx.prepared;
      const pathspec = repoPaths(repo, input.paths);
      if (!pathspec.ok) return pathspec;
      const apply = async () => {
        let args: string[];
        if (input.mode === 'unstage') {
          // Before the first commit there is no HEAD to restore the index from: remove the entries instead.
          args =
            (await headSha(repo)) === undefined
              ? ['rm', '--cached', '-r', '-q', '--', ...pathspec.value]
              : ['restore', '--staged', '--', ...pathspec.value];
        } else {
          args = ['restore', '--worktree', '--', ...pathspec.value];
        }
        const result = await repo.git(args);
        if (result.exitCode !== 0)
          return gitFailure(
            `git restore (${input.mode})`,
            result,
            'Check the paths with git_status; they are relative to the repository top level.',
          );
        return ok({ repo: repo.display, mode: input.mode, paths: pathspec.value });
      };
      // Unstaging touches the index only; discarding puts the index's version back in the work tree.
      if (input.mode === 'unstage') return leavesWorkTree(apply);
      return ok({
        effect: async () =>
          effectOf(valueOf(await treeChanges(repo, [], { reverse: true, paths: pathspec.value })), []),
        apply,
      });
    },
  });
}
