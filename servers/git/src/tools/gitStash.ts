import path from 'node:path';
import { fail, ok, type PlannedEffect } from '@keel/kit';
import * as z from 'zod';
import { headSha, pathsArg, repoArg, repoPaths, withoutOwnFiles } from '../git/args.js';
import { effectOf, emptyTree, leavesWorkTree, treeChanges, valueOf } from '../git/effect.js';
import type { Repo } from '../git/repo.js';
import { gitFailure } from '../git/runGit.js';
import { defineRepoTool, type GitTool } from '../git/withRepo.js';

const entrySchema = z.object({ index: z.number(), ref: z.string(), sha: z.string(), message: z.string() });

/** `git_stash`: shelve local changes (push), bring the newest or a chosen entry back (pop), or list entries. */
export function gitStashTool(): GitTool {
  return defineRepoTool({
    name: 'git_stash',
    title: 'Git stash',
    description:
      'action "push": saves local changes (optionally only `paths`, optionally untracked files) and cleans the working tree. "pop": re-applies stash entry `index` (default 0, the newest) and drops it. "list": shows the entries.',
    input: z.object({
      repo: repoArg,
      action: z.enum(['push', 'pop', 'list']).describe('"push", "pop" or "list".'),
      message: z
        .string()
        .min(1)
        .max(1000)
        .regex(/^[^\x00-\x1f]*$/, 'one line, no control characters')
        .optional()
        .describe('push: a description for the entry.'),
      paths: pathsArg.optional(),
      includeUntracked: z.boolean().default(false).describe('push: also stash untracked files.'),
      index: z.number().int().min(0).max(10_000).default(0).describe('pop: which entry (0 is the newest).'),
    }),
    output: z.object({
      repo: z.string(),
      action: z.enum(['push', 'pop', 'list']),
      changed: z.boolean().describe('Whether the stash or the working tree changed.'),
      entries: z.array(entrySchema).describe('The stash after the call (first 100 entries).'),
    }),
    effect: 'write',
    paths: { repo: 'existing' },
    render: (out) =>
      [
        `stash ${out.action}${out.changed ? '' : ' (nothing to do)'}`,
        ...out.entries.map((entry) => `${entry.ref}: ${entry.message}`),
      ].join('\n'),
    plan: async (input, ctx) => {
      const repo = ctx.prepared;
      const list = async () => {
        const result = await repo.git(['stash', 'list', '--format=%gd%x00%H%x00%gs', '--max-count=100']);
        return result.stdout
          .split('\n')
          .filter(Boolean)
          .map((line) => {
            const [ref = '', sha = '', message = ''] = line.split('\0');
            return { index: Number(/\{(\d+)\}/.exec(ref)?.[1] ?? 0), ref, sha, message };
          });
      };
      const answer = async (changed: boolean) =>
        ok({ repo: repo.display, action: input.action, changed, entries: await list() });
      if (input.action === 'list') return leavesWorkTree(() => answer(false));
      if (input.action === 'push') {
        const pathspec = repoPaths(repo, input.paths ?? []);
        if (!pathspec.ok) return pathspec;
        return ok({
          // The stashed paths go back to HEAD; with includeUntracked, untracked files go away too.
          effect: async () => {
            const head = await headSha(repo);
            const changes = valueOf(
              await treeChanges(repo, ['HEAD'], { reverse: true, paths: pathspec.value }),
            );
            const untracked = input.includeUntracked ? await untrackedFiles(repo, pathspec.value) : [];
            return effectOf(
              {
                ...changes,
                files: [
                  ...changes.files,
                  ...untracked.map((file) => ({ path: file, change: 'delete' as const })),
                ],
              },
              [`HEAD ${head ?? '(unborn)'}`],
            );
          },
          apply: async () => {
            const before = (await list())[0]?.sha;
            const args = ['stash', 'push', '--quiet'];
            if (input.includeUntracked) args.push('--include-untracked');
            if (input.message !== undefined) args.push(`--message=${input.message}`);
            const spec = withoutOwnFiles(repo, pathspec.value);
            if (spec.args.length > 0) args.push('--', ...spec.args);
            const result = await repo.git(args, spec.env === undefined ? {} : { env: spec.env });
            if (result.exitCode !== 0) return gitFailure('git stash push', result);
            return await answer((await list())[0]?.sha !== before);
          },
        });
      }
      const entries = await list();
      const entry = entries.find((candidate) => candidate.index === input.index);
      if (entry === undefined) {
        return fail(
          'NOT_FOUND',
          `stash entry ${input.index} does not exist in '${repo.display}' (${entries.length} entries)`,
          {
            hint:
              entries.length === 0
                ? 'The stash is empty; nothing to pop.'
                : `Pass index between 0 and ${entries.length - 1}.`,
          },
        );
      }
      return ok({
        effect: () => popEffect(repo, entry.sha),
        apply: async () => {
          const result = await repo.git(['stash', 'pop', '--quiet', `stash@{${input.index}}`]);
          if (result.exitCode !== 0)
            return gitFailure(
              'git stash pop',
              result,
              'Resolve the conflicts (see git_status); the entry is kept in the stash until it applies cleanly.',
            );
          return await answer(true);
        },
      });
    },
  });
}

/** The untracked, not ignored files under the paths (a stash with includeUntracked takes them). */
async function untrackedFiles(repo: Repo, paths: readonly string[]): Promise<string[]> {
  const spec = withoutOwnFiles(repo, paths);
  const result = await repo.git(
    ['ls-files', '--others', '--exclude-standard', '-z', '--', ...spec.args],
    spec.env === undefined ? {} : { env: spec.env },
  );
  return result.stdout
    .split('\0')
    .filter(Boolean)
    .map((name) => path.join(repo.top, name));
}

/**
 * What popping a stash entry writes: the entry's changes against the commit it was made on, and the
 * untracked files it saved. Exact when HEAD is still that commit; otherwise git merges the changes
 * into what HEAD has, and the lines may come out otherwise.
 */
async function popEffect(repo: Repo, stash: string): Promise<PlannedEffect> {
  const head = await headSha(repo);
  const base = (await repo.git(['rev-parse', '--verify', '--quiet', `${stash}^1`])).stdout.trim();
  const changes = valueOf(await treeChanges(repo, [base, stash]));
  const saved = await repo.git(['rev-parse', '--verify', '--quiet', `${stash}^3`]);
  const untracked =
    saved.exitCode === 0
      ? valueOf(await treeChanges(repo, [await emptyTree(repo), saved.stdout.trim()])).files
      : [];
  const effect = effectOf({ files: [...changes.files, ...untracked], cut: changes.cut }, [
    `HEAD ${head ?? '(unborn)'}`,
    `stash ${stash}`,
  ]);
  if (effect.complete === false || head === base) return effect;
  return {
    ...effect,
    complete: false,
    reason: `the entry was made on ${base.slice(0, 12)} and HEAD is now ${head?.slice(0, 12) ?? 'unborn'}: git merges its changes, and the lines may differ`,
  };
}
