import { fail, ok } from '@keel/kit';
import * as z from 'zod';
import { pathsArg, repoArg, repoPaths, withoutOwnFiles } from '../git/args.js';
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
    handler: async (input, ctx) => {
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
      let changed = false;
      if (input.action === 'push') {
        const pathspec = repoPaths(repo, input.paths ?? []);
        if (!pathspec.ok) return pathspec;
        const before = (await list())[0]?.sha;
        const args = ['stash', 'push', '--quiet'];
        if (input.includeUntracked) args.push('--include-untracked');
        if (input.message !== undefined) args.push(`--message=${input.message}`);
        const spec = withoutOwnFiles(repo, pathspec.value);
        if (spec.args.length > 0) args.push('--', ...spec.args);
        const result = await repo.git(args, spec.env === undefined ? {} : { env: spec.env });
        if (result.exitCode !== 0) return gitFailure('git stash push', result);
        changed = (await list())[0]?.sha !== before;
      } else if (input.action === 'pop') {
        const entries = await list();
        if (!entries.some((entry) => entry.index === input.index)) {
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
        const result = await repo.git(['stash', 'pop', '--quiet', `stash@{${input.index}}`]);
        if (result.exitCode !== 0)
          return gitFailure(
            'git stash pop',
            result,
            'Resolve the conflicts (see git_status); the entry is kept in the stash until it applies cleanly.',
          );
        changed = true;
      }
      return ok({ repo: repo.display, action: input.action, changed, entries: await list() });
    },
  });
}
