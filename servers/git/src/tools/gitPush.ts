import { fail, ok } from '@keel/kit';
import * as z from 'zod';
import { checkNewRefName, currentBranch, repoArg } from '../git/args.js';
import type { ResolvedGitOptions } from '../git/options.js';
import { checkRemote } from '../git/remote.js';
import { gitFailure, transportPrograms } from '../git/runGit.js';
import type { Repo } from '../git/repo.js';
import { defineRepoTool, type GitTool } from '../git/withRepo.js';
import { remoteArg } from './gitFetch.js';

const flagStatus: Record<string, 'new' | 'fast-forward' | 'forced' | 'up-to-date' | 'rejected' | 'deleted'> =
  {
    '*': 'new',
    ' ': 'fast-forward',
    '+': 'forced',
    '=': 'up-to-date',
    '!': 'rejected',
    '-': 'deleted',
  };

/**
 * `git_push`: publishes a local branch to a remote. It is the one tool whose effect leaves the
 * machine and cannot be called back, so the operator decides which remotes it may reach
 * (--push-remote) and whether a force-push is ever allowed (--allow-force-push).
 */
export function gitPushTool(options: ResolvedGitOptions): GitTool {
  return defineRepoTool({
    name: 'git_push',
    title: 'Git push',
    description:
      'Pushes a local branch (default: the current one) to the same-named branch on a remote. Only remotes the server allows (--push-remote) can be pushed to; `force: "with-lease"` only when the server allows force-pushes. Published commits cannot be called back.',
    input: z.object({
      repo: repoArg,
      remote: remoteArg,
      branch: z
        .string()
        .min(1)
        .max(250)
        .optional()
        .describe('The local branch to push; default the current branch.'),
      setUpstream: z
        .boolean()
        .default(false)
        .describe('Make the remote branch the upstream of the local one.'),
      force: z
        .enum(['none', 'with-lease'])
        .default('none')
        .describe(
          '"with-lease" overwrites the remote branch if it is still where we last saw it (needs --allow-force-push).',
        ),
    }),
    output: z.object({
      repo: z.string(),
      remote: z.string(),
      urls: z.array(z.string()),
      branch: z.string(),
      sha: z.string(),
      remoteRef: z.string(),
      status: z.enum(['new', 'fast-forward', 'forced', 'up-to-date', 'rejected', 'deleted']),
      upstreamSet: z.boolean(),
    }),
    effect: 'destructive',
    openWorld: true,
    idempotent: true,
    paths: { repo: 'existing' },
    render: (out) =>
      `${out.status}: ${out.branch} (${out.sha.slice(0, 12)}) -> ${out.remote} ${out.remoteRef}`,
    plan: async (input, ctx) => {
      if (!options.pushRemotes.includes(input.remote)) {
        return fail(
          'PERMISSION_DENIED',
          `pushing to remote '${input.remote}' is not allowed by this server`,
          {
            hint:
              options.pushRemotes.length === 0
                ? 'No remote is allowed: the operator must start the server with --push-remote NAME.'
                : `Allowed remotes: ${options.pushRemotes.join(', ')}.`,
          },
        );
      }
      if (input.force !== 'none' && !options.allowForcePush) {
        return fail('PERMISSION_DENIED', 'force-pushing is not allowed by this server', {
          hint: 'Integrate the remote changes first (git_pull), or ask the operator to start the server with --allow-force-push.',
        });
      }
      const repo = ctx.prepared;
      const urls = await checkRemote(repo, input.remote, options, ctx.jail, 'push');
      if (!urls.ok) return urls;
      const branch = input.branch ?? (await currentBranch(repo));
      if (branch === undefined)
        return fail('PRECONDITION_FAILED', 'HEAD is detached and no `branch` was given', {
          hint: 'Pass branch, or switch to one with git_switch.',
        });
      const valid = await checkNewRefName(repo, branch, 'branch');
      if (!valid.ok) return valid;
      const local = await repo.git(['rev-parse', '--verify', '--quiet', `refs/heads/${branch}`]);
      if (local.exitCode !== 0)
        return fail('NOT_FOUND', `branch '${branch}' does not exist in '${repo.display}'`, {
          hint: 'Push an existing local branch (see git_branch_list).',
        });
      const sha = local.stdout.trim();
      const refspec = `refs/heads/${branch}:refs/heads/${branch}`;
      return ok({
        // A push writes no working-tree file; what it does cannot be called back.
        effect: async () => ({
          files: [],
          ...(await publishes(repo, input.remote, branch, sha, input.force)),
        }),
        apply: async () => {
          const args = ['push', transportPrograms.push, '--porcelain', '--no-recurse-submodules'];
          if (input.force === 'with-lease') args.push('--force-with-lease');
          if (input.setUpstream) args.push('--set-upstream');
          if (!options.enableHooks) args.push('--no-verify');
          args.push('--end-of-options', input.remote, refspec);
          const result = await repo.git(args);
          const line = result.stdout
            .split('\n')
            .find((candidate) => candidate.includes(`\t${refspec}\t`) || candidate.includes(`\t${refspec}`));
          const status = flagStatus[line?.[0] ?? '!'] ?? 'rejected';
          if (result.exitCode !== 0 || status === 'rejected') {
            return gitFailure(
              `git push ${input.remote} ${branch}`,
              result,
              'The remote has commits you do not: fetch and integrate them (git_pull), then push again.',
            );
          }
          return ok({
            repo: repo.display,
            remote: input.remote,
            urls: urls.value,
            branch,
            sha,
            remoteRef: `refs/heads/${branch}`,
            status,
            upstreamSet: input.setUpstream,
          });
        },
      });
    },
  });
}

/**
 * What a push would make irreversible, judged against the remote branch as last fetched (the server
 * does not ask the remote in a preview): the commits it publishes, and whether it rewrites the
 * remote branch. Nothing when the remote branch is already there.
 */
async function publishes(
  repo: Repo,
  remote: string,
  branch: string,
  sha: string,
  force: 'none' | 'with-lease',
): Promise<{ irreversible?: string; basis: string[] }> {
  const tracking = await repo.git(['rev-parse', '--verify', '--quiet', `refs/remotes/${remote}/${branch}`]);
  const known = tracking.exitCode === 0 ? tracking.stdout.trim() : undefined;
  const basis = [`refs/heads/${branch} ${sha}`, `refs/remotes/${remote}/${branch} ${known ?? '(none)'}`];
  const count = async (range: string) =>
    Number((await repo.git(['rev-list', '--count', range])).stdout.trim()) || 0;
  const target = `${remote}/${branch}`;
  if (known === undefined) {
    const commits = await count(sha);
    return {
      basis,
      irreversible: `publishes branch '${branch}' (${sha.slice(0, 12)}, ${commits} commit(s) in its history) to ${remote}, as far as the server knows a new branch there; published commits cannot be called back`,
    };
  }
  if (known === sha) return { basis };
  if ((await repo.git(['merge-base', '--is-ancestor', known, sha])).exitCode === 0) {
    return {
      basis,
      irreversible: `publishes ${await count(`${known}..${sha}`)} commit(s) (${known.slice(0, 12)}..${sha.slice(0, 12)}) to ${target}; published commits cannot be called back`,
    };
  }
  const dropped = await count(`${sha}..${known}`);
  return {
    basis,
    irreversible:
      force === 'with-lease'
        ? `rewrites ${target}: ${dropped} commit(s) there and not in ${sha.slice(0, 12)} are dropped from the remote`
        : `is not a fast-forward of ${target} (${dropped} commit(s) there are not in ${sha.slice(0, 12)}): the remote refuses it without force`,
  };
}
