import { fail, ok } from '@keel/kit';
import * as z from 'zod';
import { pathsArg, repoArg, repoPaths, withoutOwnFiles } from '../git/args.js';
import { gitFailure } from '../git/runGit.js';
import { leavesWorkTree } from '../git/effect.js';
import { defineRepoTool, type GitTool } from '../git/withRepo.js';

/** `git_add`: stages paths (or everything); staging the same content twice leaves the same index. */
export function gitAddTool(): GitTool {
  return defineRepoTool({
    name: 'git_add',
    title: 'Stage changes',
    description:
      'Stages the given paths (new, modified and deleted files under them), or every change with `all: true`. Returns what is staged afterwards.',
    input: z.object({
      repo: repoArg,
      paths: pathsArg.optional(),
      all: z.boolean().default(false).describe('Stage every change in the working tree (like git add -A).'),
    }),
    output: z.object({
      repo: z.string(),
      staged: z.array(z.string()).describe('Paths staged after the call (first 1000).'),
      stagedCount: z.number(),
    }),
    effect: 'write',
    // The index only: no working-tree file, and git add runs no hook.
    changesNoFiles: true,
    idempotent: true,
    paths: { repo: 'existing' },
    render: (out) => `${out.stagedCount} staged: ${out.staged.join(', ')}`,
    // Staging, commits, refs and fetches change no working-tree file: the preview is empty.
    plan: async (input, ctx) => {
      if ((input.paths === undefined || input.paths.length === 0) && !input.all) {
        return fail('INVALID_ARGUMENT', 'nothing to stage: no paths and all is false', {
          hint: 'Pass `paths` (relative to the repository top level) or `all: true`.',
        });
      }
      const repo = ctx.prepared;
      const pathspec = repoPaths(repo, input.paths ?? []);
      if (!pathspec.ok) return pathspec;
      return leavesWorkTree(async () => {
        const spec = withoutOwnFiles(repo, pathspec.value);
        const result = await repo.git(
          ['add', '--all', ...(spec.args.length > 0 ? ['--', ...spec.args] : [])],
          spec.env === undefined ? {} : { env: spec.env },
        );
        if (result.exitCode !== 0) {
          return gitFailure(
            'git add',
            result,
            /did not match/.test(result.stderr)
              ? 'Check the paths with git_status; they are relative to the repository top level.'
              : undefined,
          );
        }
        const staged = await repo.git(['diff', '--cached', '--name-only', '-z', '--no-renames']);
        const names = staged.stdout.split('\0').filter(Boolean);
        return ok({ repo: repo.display, staged: names.slice(0, 1000), stagedCount: names.length });
      });
    },
  });
}
