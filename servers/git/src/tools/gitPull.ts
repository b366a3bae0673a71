import { fail, ok, type PlannedEffect } from '@keel/kit';
import * as z from 'zod';
import { checkNewRefName, currentBranch, headSha, repoArg } from '../git/args.js';
import type { ResolvedGitOptions } from '../git/options.js';
import { checkRemote } from '../git/remote.js';
import { gitFailure, transportPrograms } from '../git/runGit.js';
import { effectOf, emptyTree, treeChanges, valueOf } from '../git/effect.js';
import type { Repo } from '../git/repo.js';
import { defineRepoTool, type GitTool } from '../git/withRepo.js';
import { remoteArg } from './gitFetch.js';

/** `git_pull`: fetches a branch from a remote and integrates it into the current branch (fast-forward only unless asked). */
export function gitPullTool(options: ResolvedGitOptions): GitTool {
  return defineRepoTool({
    name: 'git_pull',
    title: 'Git pull',
    description:
      'Fetches `branch` (default: the current branch\'s name) from `remote` and integrates it into the current branch. strategy "ff-only" (default) refuses when histories diverged; "merge" makes a merge commit; "rebase" replays local commits.',
    input: z.object({
      repo: repoArg,
      remote: remoteArg,
      branch: z
        .string()
        .min(1)
        .max(250)
        .optional()
        .describe('The remote branch to pull; default the current branch name.'),
      strategy: z
        .enum(['ff-only', 'merge', 'rebase'])
        .default('ff-only')
        .describe('How to integrate: "ff-only", "merge" or "rebase".'),
    }),
    output: z.object({
      repo: z.string(),
      remote: z.string(),
      branch: z.string(),
      previous: z.string().nullable(),
      head: z.string().nullable(),
      changed: z.boolean(),
    }),
    effect: 'write',
    openWorld: true,
    paths: { repo: 'existing' },
    render: (out) =>
      out.changed
        ? `pulled ${out.remote}/${out.branch}: ${out.previous?.slice(0, 12) ?? '(none)'} -> ${out.head?.slice(0, 12)}`
        : `already up to date with ${out.remote}/${out.branch}`,
    plan: async (input, ctx) => {
      const repo = ctx.prepared;
      const urls = await checkRemote(repo, input.remote, options, ctx.jail, 'fetch');
      if (!urls.ok) return urls;
      const current = await currentBranch(repo);
      const branch = input.branch ?? current;
      if (branch === undefined)
        return fail('PRECONDITION_FAILED', 'HEAD is detached and no `branch` was given', {
          hint: 'Switch to a branch (git_switch) or pass branch.',
        });
      const refused = await checkNewRefName(repo, branch, 'branch');
      if (!refused.ok) return refused;
      const previous = (await headSha(repo)) ?? null;
      return ok({
        effect: () => pullEffect(repo, previous, input.remote, branch, input.strategy),
        apply: async () => {
          const mode =
            input.strategy === 'ff-only'
              ? ['--ff-only']
              : input.strategy === 'merge'
                ? ['--no-rebase', '--no-edit']
                : ['--rebase'];
          const result = await repo.git([
            'pull',
            transportPrograms.fetch,
            '--quiet',
            '--no-recurse-submodules',
            ...mode,
            ...(options.enableHooks ? [] : ['--no-verify']),
            '--end-of-options',
            input.remote,
            branch,
          ]);
          if (result.exitCode !== 0) {
            return gitFailure(
              `git pull ${input.remote} ${branch}`,
              result,
              input.strategy === 'ff-only'
                ? 'The histories diverged: pull with strategy "merge" or "rebase", or reset.'
                : 'Resolve the conflicts shown by git_status, then commit.',
            );
          }
          const head = (await headSha(repo)) ?? null;
          return ok({
            repo: repo.display,
            remote: input.remote,
            branch,
            previous,
            head,
            changed: head !== previous,
          });
        },
      });
    },
  });
}

/**
 * What a pull would write, as far as the server can know without fetching: integrating the
 * remote-tracking branch as last fetched. Never complete — the pull fetches first, and what it
 * fetches is not in the preview.
 */
async function pullEffect(
  repo: Repo,
  head: string | null,
  remote: string,
  branch: string,
  strategy: 'ff-only' | 'merge' | 'rebase',
): Promise<PlannedEffect> {
  const tracking = await repo.git([
    'rev-parse',
    '--verify',
    '--quiet',
    `refs/remotes/${remote}/${branch}^{commit}`,
  ]);
  const fetched = tracking.exitCode === 0 ? tracking.stdout.trim() : undefined;
  const basis = [`HEAD ${head ?? '(unborn)'}`, `refs/remotes/${remote}/${branch} ${fetched ?? '(none)'}`];
  const incomplete = (reason: string): PlannedEffect => ({ files: [], basis, complete: false, reason });
  if (fetched === undefined)
    return incomplete(
      `${remote}/${branch} has not been fetched yet: what the pull brings is known only once it fetches`,
    );
  const notice = `the pull fetches first; this is what integrating ${remote}/${branch} as last fetched (${fetched.slice(0, 12)}) would write, without what the fetch brings`;
  const from = head ?? (await emptyTree(repo));
  let result = fetched;
  if (head !== null && head !== fetched) {
    const ancestor = await repo.git(['merge-base', '--is-ancestor', head, fetched]);
    if (ancestor.exitCode !== 0) {
      const behind = await repo.git(['merge-base', '--is-ancestor', fetched, head]);
      if (behind.exitCode === 0) return incomplete(notice);
      if (strategy === 'ff-only')
        return incomplete(`${notice}; the histories diverged, so an ff-only pull would be refused`);
      // The tree a merge would leave (a rebase ends on the same tree when it applies cleanly).
      const merged = await repo.git(['merge-tree', '--write-tree', '--no-messages', head, fetched]);
      const tree = merged.stdout.split('\n')[0]?.trim() ?? '';
      if ((merged.exitCode !== 0 && merged.exitCode !== 1) || !/^[0-9a-f]{40,64}$/.test(tree))
        return incomplete(`${notice}; this git cannot compute the merge in advance`);
      result = tree;
    }
  }
  const changes = valueOf(await treeChanges(repo, [from, result]));
  const effect = effectOf(changes, basis);
  return { ...effect, complete: false, reason: effect.reason ?? notice };
}
