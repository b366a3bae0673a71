import { budgetArg, cursorArg, ok, truncationSchema } from '@keel/kit';
import * as z from 'zod';
import { headSha, pathsArg, refArg, repoArg, repoPaths, resolveCommit } from '../git/args.js';
import { commitSchema, logFormat, parseLog } from '../git/log.js';
import { gitFailure } from '../git/runGit.js';
import { defineRepoTool, type GitTool } from '../git/withRepo.js';

const filterText = z
  .string()
  .min(1)
  .max(500)
  .regex(/^[^\x00-\x1f\x7f]*$/, 'no control characters');

/** `git_log`: structured commits, newest first, paged by a cursor pinned to the commit the first page started from. */
export function gitLogTool(): GitTool {
  return defineRepoTool({
    name: 'git_log',
    title: 'Git log',
    description:
      'Lists commits reachable from a revision, newest first (sha, parents, author, committer, subject, body), filtered by paths, author, dates and message.',
    input: z.object({
      repo: repoArg,
      ref: refArg('Revision to start from (branch, tag, sha); default HEAD.').optional(),
      paths: pathsArg.optional(),
      author: filterText.describe('Only commits whose author name or email matches this pattern.').optional(),
      since: filterText
        .describe('Only commits after this date (e.g. "2026-01-01", "2 weeks ago").')
        .optional(),
      until: filterText.describe('Only commits before this date.').optional(),
      grep: filterText
        .describe('Only commits whose message matches this pattern (case-insensitive).')
        .optional(),
      limit: budgetArg({ default: 30, max: 500, unit: 'commits', what: 'log entries' }),
      cursor: cursorArg,
    }),
    output: z.object({
      repo: z.string(),
      ref: z.object({
        ref: z.string(),
        sha: z.string().nullable().describe('null when the branch has no commits yet.'),
      }),
      commits: z.array(commitSchema),
      truncated: truncationSchema.optional(),
    }),
    effect: 'read',
    paths: { repo: 'existing' },
    cursorIgnores: ['limit'],
    render: (out) =>
      [
        ...out.commits.map(
          (commit) =>
            `${commit.sha.slice(0, 12)} ${commit.author.date.slice(0, 10)} ${commit.author.name}: ${commit.subject}`,
        ),
        ...(out.commits.length === 0 ? ['(no commits)'] : []),
        ...(out.truncated?.nextCursor === undefined ? [] : [`(more: cursor ${out.truncated.nextCursor})`]),
      ].join('\n'),
    handler: async (input, ctx) => {
      const state = ctx.decodeCursor(input.cursor);
      if (!state.ok) return state;
      const position = state.value as { skip: number; sha: string } | undefined;
      const repo = ctx.prepared;
      const refName = input.ref ?? 'HEAD';
      const pathspec = repoPaths(repo, input.paths ?? []);
      if (!pathspec.ok) return pathspec;
      const skip = position?.skip ?? 0;
      const args = ['log', logFormat, '--no-color', `--skip=${skip}`, `--max-count=${input.limit + 1}`];
      if (input.author !== undefined) args.push(`--author=${input.author}`);
      if (input.since !== undefined) args.push(`--since=${input.since}`);
      if (input.until !== undefined) args.push(`--until=${input.until}`);
      if (input.grep !== undefined) args.push(`--grep=${input.grep}`, '--regexp-ignore-case');
      const run = (start: string) => repo.git([...args, start, '--', ...pathspec.value]);

      let start = position?.sha;
      if (start === undefined) {
        if (input.ref === undefined) {
          const head = await headSha(repo);
          if (head === undefined)
            return ok({ repo: repo.display, ref: { ref: refName, sha: null }, commits: [] });
          start = head;
        } else {
          const resolved = await resolveCommit(repo, input.ref, 'ref');
          if (!resolved.ok) return resolved;
          start = resolved.value;
        }
      }
      const result = await run(start);
      if (result.exitCode !== 0)
        return gitFailure(
          'git log',
          result,
          'Check the filters: author and grep are regular expressions, since/until are dates.',
        );
      const commits = parseLog(result.stdout);
      const more = commits.length > input.limit;
      const page = commits.slice(0, input.limit);
      return ok({
        repo: repo.display,
        ref: { ref: refName, sha: start },
        commits: page,
        ...(more
          ? {
              truncated: {
                limit: input.limit,
                unit: 'items' as const,
                nextCursor: ctx.encodeCursor({ skip: skip + input.limit, sha: start }),
              },
            }
          : {}),
      });
    },
  });
}
