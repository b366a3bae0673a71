import { budgetArg, cursorArg, fail, ok, truncationSchema } from '@keel/kit';
import * as z from 'zod';
import { refArg, repoArg, resolveCommit } from '../git/args.js';
import { parseRawNumstat } from '../git/diff.js';
import { commitSchema, logFormat, parseLog } from '../git/log.js';
import { gitFailure } from '../git/runGit.js';
import { defineRepoTool, type GitTool } from '../git/withRepo.js';

/** `git_show`: one commit's metadata, per-file summary and its patch (against the first parent) under a byte budget. */
export function gitShowTool(): GitTool {
  return defineRepoTool({
    name: 'git_show',
    title: 'Git show',
    description:
      'Shows one commit: metadata, the files it changed (against its first parent) and its patch cut to `maxBytes`, with a cursor for the rest.',
    input: z.object({
      repo: repoArg,
      ref: refArg('The commit to show (branch, tag, sha, HEAD~1); default HEAD.').default('HEAD'),
      maxBytes: budgetArg({ default: 24_000, max: 1_000_000, unit: 'bytes', what: 'patch text' }),
      maxFiles: budgetArg({ default: 100, max: 5000, unit: 'files', what: 'the per-file summary' }),
      cursor: cursorArg,
    }),
    output: z.object({
      repo: z.string(),
      ref: z.object({ ref: z.string(), sha: z.string() }),
      commit: commitSchema,
      files: z
        .array(
          z.object({
            path: z.string(),
            oldPath: z.string().optional(),
            status: z.string(),
            added: z.number().nullable(),
            deleted: z.number().nullable(),
            binary: z.boolean(),
          }),
        )
        .optional()
        .describe('Per-file summary; on the first page only.'),
      filesTotal: z.number(),
      patch: z.string(),
      patchBytes: z.number(),
      truncated: truncationSchema.optional(),
    }),
    effect: 'read',
    paths: { repo: 'existing' },
    cursorIgnores: ['maxBytes', 'maxFiles'],
    render: (out) =>
      [
        `commit ${out.commit.sha}`,
        `Author: ${out.commit.author.name} <${out.commit.author.email}>  ${out.commit.author.date}`,
        '',
        `    ${out.commit.subject}`,
        ...(out.commit.body === '' ? [] : ['', ...out.commit.body.split('\n').map((line) => `    ${line}`)]),
        '',
        out.patch,
        ...(out.truncated?.nextCursor === undefined
          ? []
          : [
              `(patch cut at ${out.truncated.limit} bytes of ${out.patchBytes}; continue with cursor ${out.truncated.nextCursor})`,
            ]),
      ].join('\n'),
    handler: async (input, ctx) => {
      const repo = ctx.prepared;
      const sha = await resolveCommit(repo, input.ref, 'ref');
      if (!sha.ok) return sha;
      const diffArgs = ['--no-color', '--no-ext-diff', '--no-textconv', '-M', '--diff-merges=first-parent'];
      const [meta, summary, patch] = await Promise.all([
        repo.git(['show', '-s', logFormat, sha.value]),
        repo.git(['show', '--format=', '--raw', '--numstat', '-z', ...diffArgs, sha.value]),
        repo.git(['show', '--format=', '--patch', ...diffArgs, sha.value]),
      ]);
      for (const result of [meta, summary, patch])
        if (result.exitCode !== 0) return gitFailure('git show', result);
      if (patch.cut)
        return fail(
          'RESOURCE_LIMIT',
          `commit ${sha.value} has a patch larger than the server can page (64 MiB)`,
          { hint: 'Use git_diff with `paths` to look at single files.' },
        );
      const commit = parseLog(meta.stdout)[0];
      if (commit === undefined) return fail('INTERNAL', `git show printed no commit for ${sha.value}`);
      const page = ctx.text(patch.stdoutBytes, { maxBytes: input.maxBytes, cursor: input.cursor });
      if (!page.ok) return page;
      const files = parseRawNumstat(summary.stdout.replace(/^\0+/, ''));
      return ok({
        repo: repo.display,
        ref: { ref: input.ref, sha: sha.value },
        commit,
        ...(input.cursor === undefined ? { files: files.slice(0, input.maxFiles) } : {}),
        filesTotal: files.length,
        patch: page.value.text,
        patchBytes: page.value.totalBytes,
        ...(page.value.truncated === undefined ? {} : { truncated: page.value.truncated }),
      });
    },
  });
}
