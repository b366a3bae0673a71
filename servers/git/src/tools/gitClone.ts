import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { defineTool, fail, ok, type PlannedEffect, type ToolContext } from '@keel/kit';
import * as z from 'zod';
import type { GitTool } from '../git/withRepo.js';
import { currentBranch, headSha, resolveCommit } from '../git/args.js';
import { effectOf, emptyTree, treeChanges, valueOf } from '../git/effect.js';
import type { ResolvedGitOptions } from '../git/options.js';
import { checkUrl } from '../git/remote.js';
import { openRepo } from '../git/repo.js';
import { gitFailure, runGit, transportPrograms } from '../git/runGit.js';

/** `git_clone`: copies a repository (a local one inside the roots, or a URL on an allowed transport) into the roots. */
export function gitCloneTool(options: ResolvedGitOptions): GitTool {
  return defineTool({
    name: 'git_clone',
    title: 'Clone a git repository',
    description:
      'Clones `url` into `path` (inside the roots; must not exist or be empty). `url` is a local repository path inside the roots or a URL on an allowed transport (https, ssh, file by default; never ext::). Optional `branch` and shallow `depth`. Submodules are not cloned.',
    input: z.object({
      url: z
        .string()
        .min(1)
        .max(4096)
        .regex(/^[^\x00-\x1f\x7f]*$/, 'no control characters')
        .describe('What to clone: a URL, or a local repository path (relative to the first root).'),
      path: z
        .string()
        .min(1)
        .max(4096)
        .describe('Where the clone goes: relative to the first root, or absolute inside a root.'),
      branch: z
        .string()
        .min(1)
        .max(250)
        .optional()
        .describe('The branch to check out (default: the remote HEAD).'),
      depth: z
        .number()
        .int()
        .positive()
        .max(1_000_000)
        .optional()
        .describe('Make a shallow clone with this many commits.'),
    }),
    output: z.object({
      url: z.string(),
      path: z.string(),
      branch: z.string().nullable(),
      head: z.string().nullable(),
    }),
    effect: 'write',
    openWorld: true,
    paths: { path: 'any' },
    render: (out) =>
      `cloned ${out.url} into ${out.path} (${out.branch ?? 'detached'} ${out.head?.slice(0, 12) ?? 'empty'})`,
    plan: async (input, ctx) => {
      const target = ctx.paths.path;
      if (target.exists) {
        const entries = await readdir(target.real).catch(() => undefined);
        if (entries === undefined || entries.length > 0)
          return fail('ALREADY_EXISTS', `'${input.path}' already exists and is not an empty directory`, {
            hint: 'Clone into a new path.',
          });
      }
      const url = await checkUrl(input.url, options, ctx.jail, ctx.jail.roots[0] ?? target.root, 'url');
      if (!url.ok) return url;
      if (
        input.branch !== undefined &&
        (input.branch.startsWith('-') || !/^[A-Za-z0-9._/-]+$/.test(input.branch))
      ) {
        return fail('INVALID_ARGUMENT', `'${input.branch}' is not a valid branch name`, {
          hint: 'Use letters, digits, . _ / - and do not start with -.',
        });
      }
      const source = url.value.localPath ?? input.url;
      return ok({
        effect: () => cloneEffect(ctx, options, url.value.localPath, input.branch, target.real),
        apply: async () => {
          const args = [
            'clone',
            transportPrograms.fetch,
            '--quiet',
            '--no-local',
            '--template=',
            '--no-recurse-submodules',
          ];
          if (input.branch !== undefined) args.push(`--branch=${input.branch}`);
          if (input.depth !== undefined) args.push(`--depth=${input.depth}`);
          args.push('--end-of-options', source, target.real);
          const result = await runGit(ctx, options, { cwd: target.root, args });
          if (result.exitCode !== 0)
            return gitFailure(
              `git clone '${input.url}'`,
              result,
              'Check the URL (or path) and, for a branch, that it exists on the remote.',
            );
          const repo = await openRepo(ctx, options, target.real);
          if (!repo.ok) return repo;
          return ok({
            url: input.url,
            path: ctx.jail.display(target.real),
            branch: (await currentBranch(repo.value)) ?? null,
            head: (await headSha(repo.value)) ?? null,
          });
        },
      });
    },
  });
}

/**
 * What a clone writes: a repository inside the roots is read for the commit it checks out, every
 * file of it created under `target` beside the new .git directory; a remote one is known only once
 * fetched, so its preview is the new directory and says it is incomplete.
 */
async function cloneEffect(
  ctx: ToolContext,
  options: ResolvedGitOptions,
  local: string | undefined,
  branch: string | undefined,
  target: string,
): Promise<PlannedEffect> {
  const git = { path: path.join(target, '.git'), change: 'create' as const, directory: true };
  const source = local === undefined ? undefined : await openRepo(ctx, options, local);
  if (source === undefined || !source.ok) {
    return {
      files: [{ path: target, change: 'create', directory: true }],
      complete: false,
      reason: 'the files come from the remote: they are known only once it is cloned',
    };
  }
  const commit = await resolveCommit(
    source.value,
    branch === undefined ? 'HEAD' : `refs/heads/${branch}`,
    'branch',
  );
  // An empty repository, or a branch it lacks (the clone itself will say so): nothing is checked out.
  if (!commit.ok) return { files: [git] };
  const files = valueOf(
    await treeChanges(source.value, [await emptyTree(source.value), commit.value], { base: target }),
  );
  return effectOf({ ...files, files: [...files.files, git] }, [`source ${commit.value}`]);
}
