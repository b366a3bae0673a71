import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { defineTool, fail, ok } from '@keel/kit';
import * as z from 'zod';
import type { GitTool } from '../git/withRepo.js';
import { checkNewRefName } from '../git/args.js';
import type { ResolvedGitOptions } from '../git/options.js';
import { openRepo } from '../git/repo.js';
import { gitFailure, runGit } from '../git/runGit.js';

/** `git_init`: a new, empty repository inside the roots; initialising an existing one changes nothing. */
export function gitInitTool(options: ResolvedGitOptions): GitTool {
  return defineTool({
    name: 'git_init',
    title: 'Create a git repository',
    description:
      'Creates an empty repository at `path` (inside the roots; created if missing) on branch `initialBranch`. If `path` already is a repository, nothing changes and created is false.',
    input: z.object({
      path: z
        .string()
        .min(1)
        .max(4096)
        .describe('The directory for the repository: relative to the first root, or absolute inside a root.'),
      initialBranch: z
        .string()
        .min(1)
        .max(250)
        .default('main')
        .describe('The name of the first branch (default "main").'),
    }),
    output: z.object({ path: z.string(), branch: z.string(), created: z.boolean() }),
    effect: 'write',
    idempotent: true,
    paths: { path: 'any' },
    render: (out) =>
      `${out.created ? 'initialised' : 'already a repository:'} ${out.path} (branch ${out.branch})`,
    plan: async (input, ctx) => {
      const target = ctx.paths.path;
      if (input.initialBranch.startsWith('-') || !/^[A-Za-z0-9._/-]+$/.test(input.initialBranch)) {
        return fail('INVALID_ARGUMENT', `'${input.initialBranch}' is not a valid branch name`, {
          hint: 'Use letters, digits, . _ / - and do not start with -.',
        });
      }
      if (target.exists) {
        const entries = await readdir(target.real).catch(() => undefined);
        if (entries === undefined)
          return fail('ALREADY_EXISTS', `'${input.path}' exists and is not a directory`, {
            hint: 'Pick a directory path.',
          });
        if (entries.includes('.git')) {
          const existing = await openRepo(ctx, options, target.real);
          if (!existing.ok) return existing;
          if (existing.value.top === target.real) {
            const head = await existing.value.git(['symbolic-ref', '--quiet', '--short', 'HEAD']);
            const answer = {
              path: ctx.jail.display(target.real),
              branch: head.stdout.trim(),
              created: false,
            };
            return ok({ effect: () => ({ files: [] }), apply: async () => ok(answer) });
          }
        }
      }
      return ok({
        // An empty repository: its .git directory (and the directory itself when it is new).
        effect: () => ({
          files: [
            ...(target.exists ? [] : [{ path: target.real, change: 'create' as const, directory: true }]),
            { path: path.join(target.real, '.git'), change: 'create' as const, directory: true },
          ],
        }),
        apply: async () => {
          const result = await runGit(ctx, options, {
            cwd: target.root,
            args: [
              'init',
              '--quiet',
              '--template=',
              `--initial-branch=${input.initialBranch}`,
              '--',
              target.real,
            ],
          });
          if (result.exitCode !== 0) return gitFailure(`git init '${input.path}'`, result);
          const created = await openRepo(ctx, options, target.real);
          if (!created.ok) return created;
          const valid = await checkNewRefName(created.value, input.initialBranch, 'branch');
          if (!valid.ok) return valid;
          return ok({ path: ctx.jail.display(target.real), branch: input.initialBranch, created: true });
        },
      });
    },
  });
}
