import { ok } from '@keel/kit';
import * as z from 'zod';
import { currentBranch, headSha, refArg, repoArg, resolveCommit } from '../git/args.js';
import { gitFailure } from '../git/runGit.js';
import { effectOf, leavesWorkTree, treeChanges, valueOf } from '../git/effect.js';
import { defineRepoTool, type GitTool } from '../git/withRepo.js';

/** `git_reset`: moves the current branch to a commit; `hard` also overwrites the index and working tree (destructive). */
export function gitResetTool(): GitTool {
  return defineRepoTool({
    name: 'git_reset',
    title: 'Reset the current branch',
    description:
      'Moves the current branch (HEAD) to `target`. "soft" keeps index and working tree; "mixed" (default) resets the index and keeps the working tree; "hard" resets both and loses uncommitted work.',
    input: z.object({
      repo: repoArg,
      target: refArg('The commit to move to (sha, branch, tag, HEAD~1); default HEAD.').default('HEAD'),
      mode: z
        .enum(['soft', 'mixed', 'hard'])
        .default('mixed')
        .describe('"soft", "mixed" or "hard" (destructive).'),
    }),
    output: z.object({
      repo: z.string(),
      mode: z.enum(['soft', 'mixed', 'hard']),
      branch: z.string().nullable(),
      previous: z.string().nullable().describe('HEAD before the reset.'),
      target: z.object({ ref: z.string(), sha: z.string() }),
    }),
    effect: 'destructive',
    paths: { repo: 'existing' },
    render: (out) =>
      `${out.mode} reset ${out.branch ?? 'HEAD'} from ${out.previous?.slice(0, 12) ?? '(none)'} to ${out.target.sha.slice(0, 12)} (${out.target.ref})`,
    plan: async (input, ctx) => {
      const repo = ctx.prepared;
      const target = await resolveCommit(repo, input.target, 'target');
      if (!target.ok) return target;
      const previous = (await headSha(repo)) ?? null;
      const apply = async () => {
        const result = await repo.git(['reset', '--quiet', `--${input.mode}`, target.value, '--']);
        if (result.exitCode !== 0) return gitFailure(`git reset --${input.mode}`, result);
        return ok({
          repo: repo.display,
          mode: input.mode,
          branch: (await currentBranch(repo)) ?? null,
          previous,
          target: { ref: input.target, sha: target.value },
        });
      };
      // Soft and mixed leave the work tree; hard makes every tracked file what the target has.
      if (input.mode !== 'hard') return leavesWorkTree(apply);
      return ok({
        effect: async () =>
          effectOf(valueOf(await treeChanges(repo, [target.value], { reverse: true })), [
            `HEAD ${previous ?? '(unborn)'}`,
            `target ${target.value}`,
          ]),
        apply,
      });
    },
  });
}
