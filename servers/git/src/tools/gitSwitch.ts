import { fail, ok, type PlannedEffect } from '@keel/kit';
import * as z from 'zod';
import {
  branchNames,
  checkNewRefName,
  currentBranch,
  headSha,
  refArg,
  repoArg,
  resolveCommit,
} from '../git/args.js';
import { gitFailure } from '../git/runGit.js';
import { effectOf, emptyTree, treeChanges, valueOf } from '../git/effect.js';
import type { Repo } from '../git/repo.js';
import { defineRepoTool, type GitTool } from '../git/withRepo.js';

/** `git_switch`: makes a branch the checked-out one (set-state: switching to where you are is a no-op). */
export function gitSwitchTool(): GitTool {
  return defineRepoTool({
    name: 'git_switch',
    title: 'Switch git branch',
    description:
      'Switches the working tree to a branch. With `create: true` the branch is created at `startPoint` (default HEAD) first. Refuses when local changes would be overwritten (git keeps them safe).',
    input: z.object({
      repo: repoArg,
      branch: z.string().min(1).max(250).describe('The branch to switch to.'),
      create: z.boolean().default(false).describe('Create the branch first (fails if it exists).'),
      startPoint: refArg('With create: where the new branch starts; default HEAD.').optional(),
    }),
    output: z.object({
      repo: z.string(),
      branch: z.string(),
      sha: z.string().nullable(),
      previous: z.string().nullable(),
      created: z.boolean(),
    }),
    effect: 'write',
    idempotent: true,
    paths: { repo: 'existing' },
    render: (out) =>
      `switched to ${out.created ? 'new ' : ''}branch ${out.branch} (${out.sha?.slice(0, 12) ?? 'no commits'})${out.previous === null ? '' : ` from ${out.previous}`}`,
    plan: async (input, ctx) => {
      const repo = ctx.prepared;
      const previous = (await currentBranch(repo)) ?? null;
      const head = await headSha(repo);
      if (input.create) {
        const valid = await checkNewRefName(repo, input.branch, 'branch');
        if (!valid.ok) return valid;
        const start =
          input.startPoint === undefined
            ? undefined
            : await resolveCommit(repo, input.startPoint, 'startPoint');
        if (start !== undefined && !start.ok) return start;
        return ok({
          effect: () => checkoutEffect(repo, head, start?.value ?? head),
          apply: async () => {
            const result = await repo.git([
              'switch',
              '--no-guess',
              '--no-track',
              '-c',
              input.branch,
              ...(start === undefined ? [] : [start.value]),
            ]);
            if (result.exitCode !== 0)
              return gitFailure(`creating and switching to '${input.branch}'`, result);
            return ok({
              repo: repo.display,
              branch: input.branch,
              sha: (await headSha(repo)) ?? null,
              previous,
              created: true,
            });
          },
        });
      }
      if (input.startPoint !== undefined)
        return fail('INVALID_ARGUMENT', '`startPoint` only applies with `create: true`', {
          hint: 'Drop startPoint, or set create: true.',
        });
      const valid = await checkNewRefName(repo, input.branch, 'branch');
      if (!valid.ok) return valid;
      const exists = await repo.git(['rev-parse', '--verify', '--quiet', `refs/heads/${input.branch}`]);
      if (exists.exitCode !== 0) {
        const names = await branchNames(repo);
        return fail('NOT_FOUND', `branch '${input.branch}' does not exist in '${repo.display}'`, {
          hint: `Existing branches: ${names.slice(0, 20).join(', ') || '(none)'}. Use create: true to make a new one.`,
        });
      }
      return ok({
        effect: () => checkoutEffect(repo, head, exists.stdout.trim()),
        apply: async () => {
          const result = await repo.git(['switch', '--no-guess', '--end-of-options', input.branch]);
          if (result.exitCode !== 0)
            return gitFailure(
              `switching to '${input.branch}'`,
              result,
              'Commit, stash (git_stash) or discard the local changes first.',
            );
          return ok({
            repo: repo.display,
            branch: input.branch,
            sha: (await headSha(repo)) ?? null,
            previous,
            created: false,
          });
        },
      });
    },
  });
}

/**
 * What a checkout from HEAD to `target` writes: every file the two commits differ in (git leaves
 * the others, local changes included, as they are, and refuses rather than overwrite a local change).
 */
async function checkoutEffect(
  repo: Repo,
  head: string | undefined,
  target: string | undefined,
): Promise<PlannedEffect> {
  const basis = [`HEAD ${head ?? '(unborn)'}`, `target ${target ?? '(unborn)'}`];
  if (target === undefined || target === head) return { files: [], basis };
  return effectOf(valueOf(await treeChanges(repo, [head ?? (await emptyTree(repo)), target])), basis);
}
