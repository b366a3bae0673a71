import { fail, ok } from '@keel/kit';
import * as z from 'zod';
import { checkNewRefName, refArg, repoArg, resolveCommit } from '../git/args.js';
import { gitFailure } from '../git/runGit.js';
import { leavesWorkTree, refsOnlyChangeNoFiles } from '../git/effect.js';
import { defineRepoTool, type GitTool } from '../git/withRepo.js';
import type { ResolvedGitOptions } from '../git/options.js';

/** `git_branch_create`: a new branch at a commit; asking again for the same branch at the same commit succeeds. */
export function gitBranchCreateTool(options: ResolvedGitOptions): GitTool {
  return defineRepoTool({
    name: 'git_branch_create',
    title: 'Create a git branch',
    description:
      'Creates a branch at a revision (default HEAD) without switching to it. Succeeds with `created: false` if the branch already points there; refuses if it points elsewhere.',
    input: z.object({
      repo: repoArg,
      name: z.string().min(1).max(250).describe('The new branch name, e.g. "feat/login".'),
      startPoint: refArg('Where the branch starts (branch, tag, sha); default HEAD.').default('HEAD'),
    }),
    output: z.object({
      repo: z.string(),
      branch: z.string(),
      sha: z.string(),
      startPoint: z.object({ ref: z.string(), sha: z.string() }),
      created: z.boolean(),
    }),
    effect: 'write',
    changesNoFiles: refsOnlyChangeNoFiles(options),
    idempotent: true,
    paths: { repo: 'existing' },
    render: (out) =>
      `${out.created ? 'created' : 'already at'} branch ${out.branch} at ${out.sha.slice(0, 12)} (${out.startPoint.ref})`,
    // Staging, commits, refs and fetches change no working-tree file: the preview is empty.
    plan: async (input, ctx) =>
      leavesWorkTree(async () => {
        const repo = ctx.prepared;
        const valid = await checkNewRefName(repo, input.name, 'branch');
        if (!valid.ok) return valid;
        const start = await resolveCommit(repo, input.startPoint, 'startPoint');
        if (!start.ok) return start;
        const existing = await repo.git(['rev-parse', '--verify', '--quiet', `refs/heads/${input.name}`]);
        if (existing.exitCode === 0) {
          const sha = existing.stdout.trim();
          if (sha === start.value)
            return ok({
              repo: repo.display,
              branch: input.name,
              sha,
              startPoint: { ref: input.startPoint, sha: start.value },
              created: false,
            });
          return fail(
            'ALREADY_EXISTS',
            `branch '${input.name}' already exists at ${sha.slice(0, 12)}, not at ${input.startPoint} (${start.value.slice(0, 12)})`,
            {
              hint: 'Pick another name, or use git_switch to work on the existing branch.',
            },
          );
        }
        const result = await repo.git(['branch', '--no-track', '--end-of-options', input.name, start.value]);
        if (result.exitCode !== 0) return gitFailure(`creating branch '${input.name}'`, result);
        return ok({
          repo: repo.display,
          branch: input.name,
          sha: start.value,
          startPoint: { ref: input.startPoint, sha: start.value },
          created: true,
        });
      }),
  });
}
