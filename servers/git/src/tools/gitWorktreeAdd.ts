import path from 'node:path';
import { fail, ok } from '@keel/kit';
import * as z from 'zod';
import { checkNewRefName, headSha, refArg, repoArg, resolveCommit } from '../git/args.js';
import type { ResolvedGitOptions } from '../git/options.js';
import { openRepo } from '../git/repo.js';
import { gitFailure } from '../git/runGit.js';
import { effectOf, emptyTree, treeChanges, valueOf } from '../git/effect.js';
import { defineRepoTool, type GitTool } from '../git/withRepo.js';

/** `git_worktree_add`: a second, isolated checkout of the same repository, so agents can work in parallel. */
export function gitWorktreeAddTool(options: ResolvedGitOptions): GitTool {
  return defineRepoTool({
    name: 'git_worktree_add',
    title: 'Add a git worktree',
    description:
      'Creates a linked work tree at `path` (inside the roots, must not exist) with its own checked-out branch. By default creates the new branch `branch` at `startPoint` (default HEAD); with `create: false` checks out an existing branch that is not checked out elsewhere.',
    input: z.object({
      repo: repoArg,
      path: z
        .string()
        .min(1)
        .max(4096)
        .describe('Where the new work tree goes: relative to the first root, or absolute inside a root.'),
      branch: z.string().min(1).max(250).describe('The branch the work tree checks out.'),
      create: z
        .boolean()
        .default(true)
        .describe('Create `branch` (default); false checks out an existing branch.'),
      startPoint: refArg('With create: where the new branch starts; default HEAD.').optional(),
    }),
    output: z.object({
      repo: z.string(),
      path: z.string(),
      branch: z.string(),
      head: z.string(),
      created: z.boolean(),
    }),
    effect: 'write',
    paths: { repo: 'existing', path: 'any' },
    render: (out) =>
      `worktree ${out.path} on ${out.created ? 'new ' : ''}branch ${out.branch} at ${out.head.slice(0, 12)}`,
    plan: async (input, ctx) => {
      const target = ctx.paths.path;
      if (target.exists)
        return fail('ALREADY_EXISTS', `'${input.path}' already exists`, {
          hint: 'Pick a path that does not exist yet; git_worktree_list shows the existing work trees.',
        });
      const repo = ctx.prepared;
      const valid = await checkNewRefName(repo, input.branch, 'branch');
      if (!valid.ok) return valid;
      let args: string[];
      let commit: string;
      if (input.create) {
        const start = await resolveCommit(repo, input.startPoint ?? 'HEAD', 'startPoint');
        if (!start.ok) return start;
        commit = start.value;
        args = ['worktree', 'add', '--quiet', '-b', input.branch, target.real, start.value];
      } else {
        if (input.startPoint !== undefined)
          return fail('INVALID_ARGUMENT', '`startPoint` only applies with create: true', {
            hint: 'Drop startPoint.',
          });
        const exists = await repo.git(['rev-parse', '--verify', '--quiet', `refs/heads/${input.branch}`]);
        if (exists.exitCode !== 0)
          return fail('NOT_FOUND', `branch '${input.branch}' does not exist`, {
            hint: 'Use create: true to make it.',
          });
        commit = exists.stdout.trim();
        args = ['worktree', 'add', '--quiet', target.real, input.branch];
      }
      return ok({
        // A new directory: the commit's every file, and the .git file that links it to the repository.
        effect: async () => {
          const files = valueOf(
            await treeChanges(repo, [await emptyTree(repo), commit], { base: target.real }),
          );
          return effectOf(
            { ...files, files: [...files.files, { path: path.join(target.real, '.git'), change: 'create' }] },
            [`start ${commit}`],
          );
        },
        apply: async () => {
          const result = await repo.git(args);
          if (result.exitCode !== 0)
            return gitFailure(
              `git worktree add '${input.path}'`,
              result,
              'A branch can be checked out in only one work tree; pick another branch or create a new one.',
            );
          const added = await openRepo(ctx, options, target.real);
          if (!added.ok) return added;
          const head = await headSha(added.value);
          return ok({
            repo: repo.display,
            path: ctx.jail.display(target.real),
            branch: input.branch,
            head: head ?? '',
            created: input.create,
          });
        },
      });
    },
  });
}
