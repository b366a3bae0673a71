import { budgetArg, cursorArg, ok, truncationSchema } from '@keel/kit';
import * as z from 'zod';
import { repoArg, withoutOwnFiles } from '../git/args.js';
import { gitFailure } from '../git/runGit.js';
import { parsePorcelainV2 } from '../git/status.js';
import { defineRepoTool, type GitTool } from '../git/withRepo.js';

const changeSchema = z.object({ path: z.string(), status: z.string(), origPath: z.string().optional() });

/** `git_status`: branch, upstream, ahead/behind and the changed paths by group, paged as one list. */
export function gitStatusTool(): GitTool {
  return defineRepoTool({
    name: 'git_status',
    title: 'Git status',
    description:
      'Shows the working tree state: current branch, upstream with ahead/behind, and staged, unstaged, untracked and conflicted paths. Paths are paged together, in path order, under `limit`.',
    input: z.object({
      repo: repoArg,
      limit: budgetArg({ default: 500, max: 5000, unit: 'paths', what: 'changed paths' }),
      cursor: cursorArg,
    }),
    output: z.object({
      repo: z.string(),
      branch: z.object({
        head: z.string().nullable().describe('The branch, or null when HEAD is detached.'),
        oid: z.string().nullable().describe('HEAD commit, or null before the first commit.'),
        upstream: z.string().optional(),
        ahead: z.number().optional(),
        behind: z.number().optional(),
      }),
      clean: z.boolean(),
      counts: z.object({
        staged: z.number(),
        unstaged: z.number(),
        untracked: z.number(),
        conflicted: z.number(),
      }),
      staged: z.array(changeSchema),
      unstaged: z.array(changeSchema),
      untracked: z.array(z.string()),
      conflicted: z.array(changeSchema),
      truncated: truncationSchema.optional(),
    }),
    effect: 'read',
    paths: { repo: 'existing' },
    cursorIgnores: ['limit'],
    render: (out) => {
      const head = out.branch.head ?? `detached at ${out.branch.oid?.slice(0, 12) ?? '(no commit)'}`;
      const track =
        out.branch.upstream === undefined
          ? ''
          : ` … ${out.branch.upstream} [ahead ${out.branch.ahead ?? 0}, behind ${out.branch.behind ?? 0}]`;
      const lines = [`## ${head}${track}`];
      for (const entry of out.staged)
        lines.push(
          `staged    ${entry.status}: ${entry.origPath === undefined ? '' : `${entry.origPath} -> `}${entry.path}`,
        );
      for (const entry of out.unstaged) lines.push(`unstaged  ${entry.status}: ${entry.path}`);
      for (const entry of out.conflicted) lines.push(`conflict  ${entry.status}: ${entry.path}`);
      for (const file of out.untracked) lines.push(`untracked ${file}`);
      if (out.clean) lines.push('nothing to commit, working tree clean');
      if (out.truncated?.nextCursor !== undefined) lines.push(`(more: cursor ${out.truncated.nextCursor})`);
      return lines.join('\n');
    },
    handler: async (input, ctx) => {
      const repo = ctx.prepared;
      const spec = withoutOwnFiles(repo, []);
      const result = await repo.git(
        [
          'status',
          '--porcelain=v2',
          '--branch',
          '-z',
          '--untracked-files=all',
          '--ignore-submodules=all',
          '--',
          ...spec.args,
        ],
        spec.env === undefined ? {} : { env: spec.env },
      );
      if (result.exitCode !== 0) return gitFailure('git status', result);
      const { branch, entries } = parsePorcelainV2(result.stdout);
      const page = ctx.list(entries, { limit: input.limit, cursor: input.cursor });
      if (!page.ok) return page;
      const count = (group: string) => entries.filter((entry) => entry.group === group).length;
      const pick = (group: string) =>
        page.value.items
          .filter((entry) => entry.group === group)
          .map((entry) => ({
            path: entry.path,
            status: entry.status,
            ...(entry.origPath === undefined ? {} : { origPath: entry.origPath }),
          }));
      return ok({
        repo: repo.display,
        branch,
        clean: entries.length === 0,
        counts: {
          staged: count('staged'),
          unstaged: count('unstaged'),
          untracked: count('untracked'),
          conflicted: count('conflicted'),
        },
        staged: pick('staged'),
        unstaged: pick('unstaged'),
        untracked: page.value.items.filter((entry) => entry.group === 'untracked').map((entry) => entry.path),
        conflicted: pick('conflicted'),
        ...(page.value.truncated === undefined ? {} : { truncated: page.value.truncated }),
      });
    },
  });
}
