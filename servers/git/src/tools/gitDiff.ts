import { budgetArg, cursorArg, fail, ok, truncationSchema } from '@keel/kit';
import * as z from 'zod';
import {
  headSha,
  pathsArg,
  refArg,
  repoArg,
  repoPaths,
  resolveCommit,
  withoutOwnFiles,
} from '../git/args.js';
import { parseRawNumstat, parseRawWithPatch } from '../git/diff.js';
import { gitFailure } from '../git/runGit.js';
import { defineRepoTool, type GitTool } from '../git/withRepo.js';

const refSchema = z.object({ ref: z.string(), sha: z.string() });
const fileSchema = z.object({
  path: z.string(),
  oldPath: z.string().optional(),
  status: z.string(),
  added: z.number().nullable().describe('Lines added; null for a binary or unmerged file.'),
  deleted: z.number().nullable().describe('Lines deleted; null for a binary or unmerged file.'),
  binary: z.boolean(),
});

const fromArg = refArg(
  'Base revision (branch, tag, sha, HEAD~1): compared with the working tree (the index when staged), or with `to`.',
);
const common = {
  repo: repoArg,
  paths: pathsArg.optional(),
  maxBytes: budgetArg({ default: 20_000, max: 1_000_000, unit: 'bytes', what: 'patch text' }),
  maxFiles: budgetArg({ default: 50, max: 5000, unit: 'files', what: 'the per-file summary' }),
  cursor: cursorArg,
};

/**
 * `git_diff`: a per-file summary first, then the unified patch cut to a byte budget with a cursor
 * that continues byte-exactly. Narrow to one file with `paths` to walk that file's hunks alone.
 */
export function gitDiffTool(): GitTool {
  return defineRepoTool({
    name: 'git_diff',
    title: 'Git diff',
    description:
      'Shows changes: working tree vs index (default), index vs HEAD (`staged`), a commit vs the working tree (`from`), or two commits (`from`, `to`): a per-file summary (status, lines added/deleted, binary, renames), then the patch cut to `maxBytes`.',
    // Two modes the schema spells out, so the model is told rather than refused: against the
    // working tree or the index, or between two commits (which have no index to stage against).
    input: z.xor([
      z
        .strictObject({
          ...common,
          staged: z
            .boolean()
            .default(false)
            .describe('Compare the index (staged changes) instead of the working tree.'),
          from: fromArg.optional(),
        })
        .describe('Working tree or index: against the index, HEAD or `from`.'),
      z
        .strictObject({
          ...common,
          from: fromArg,
          to: refArg('Target revision, compared with `from`.'),
        })
        .describe('Between two commits: `from` and `to`, both required; `staged` does not apply.'),
    ]),
    output: z.object({
      repo: z.string(),
      mode: z.enum(['worktree', 'staged', 'commit-worktree', 'commit-staged', 'commits']),
      from: refSchema.optional(),
      to: refSchema.optional(),
      files: z.array(fileSchema).optional().describe('Per-file summary; on the first page only.'),
      totals: z.object({ files: z.number(), added: z.number(), deleted: z.number() }),
      patch: z.string(),
      patchBytes: z.number().describe('Size of the whole patch.'),
      truncated: truncationSchema.optional(),
    }),
    effect: 'read',
    paths: { repo: 'existing' },
    cursorIgnores: ['maxBytes', 'maxFiles'],
    render: (out) => {
      const lines: string[] = [];
      if (out.files !== undefined) {
        for (const file of out.files) {
          const counts = file.binary ? 'binary' : `+${file.added ?? 0} -${file.deleted ?? 0}`;
          lines.push(
            `${file.status} ${file.oldPath === undefined ? '' : `${file.oldPath} -> `}${file.path} (${counts})`,
          );
        }
        if (out.files.length < out.totals.files)
          lines.push(`… ${out.totals.files - out.files.length} more files (narrow with paths)`);
        lines.push(`${out.totals.files} files, +${out.totals.added} -${out.totals.deleted}`, '');
      }
      lines.push(out.patch);
      if (out.truncated?.nextCursor !== undefined)
        lines.push(
          `(patch cut at ${out.truncated.limit} bytes of ${out.patchBytes}; continue with cursor ${out.truncated.nextCursor})`,
        );
      return lines.join('\n');
    },
    handler: async (input, ctx) => {
      const cursor = ctx.decodeCursor(input.cursor);
      if (!cursor.ok) return cursor;
      const repo = ctx.prepared;
      const staged = 'staged' in input && input.staged;
      const revs: string[] = [];
      let from: { ref: string; sha: string } | undefined;
      let to: { ref: string; sha: string } | undefined;
      if (input.from !== undefined) {
        const sha = await resolveCommit(repo, input.from, 'from');
        if (!sha.ok) return sha;
        from = { ref: input.from, sha: sha.value };
        revs.push(sha.value);
      }
      if ('to' in input) {
        const sha = await resolveCommit(repo, input.to, 'to');
        if (!sha.ok) return sha;
        to = { ref: input.to, sha: sha.value };
        revs.push(sha.value);
      }
      if (staged && from === undefined) {
        // Name the commit the index is compared with, so the result says what it is relative to.
        const head = await headSha(repo);
        if (head !== undefined) {
          from = { ref: 'HEAD', sha: head };
          revs.push(head);
        }
      }
      const pathspec = repoPaths(repo, input.paths ?? []);
      if (!pathspec.ok) return pathspec;
      const spec = withoutOwnFiles(repo, pathspec.value);
      const common = [
        '--no-color',
        '--no-ext-diff',
        '--no-textconv',
        '-M',
        ...(staged ? ['--cached'] : []),
        ...revs,
        '--',
        ...spec.args,
      ];
      const call = spec.env === undefined ? {} : { env: spec.env };
      // One git run gives the summary and the patch, so they describe the same state of the tree;
      // line counts come from the patch itself unless it cannot be lined up with the summary.
      let result = await repo.git(['diff', '--raw', '-z', '--patch', ...common], call);
      let parsed = result.exitCode === 0 && !result.cut ? parseRawWithPatch(result.stdoutBytes) : undefined;
      if (parsed === undefined && result.exitCode === 0 && !result.cut) {
        // Unmerged paths get a combined diff, which git does not print beside --raw: ask separately.
        const [summary, patch] = await Promise.all([
          repo.git(['diff', '--raw', '--numstat', '-z', ...common], call),
          repo.git(['diff', '--patch', ...common], call),
        ]);
        result = summary.exitCode !== 0 ? summary : patch;
        parsed = { files: parseRawNumstat(summary.stdout), patch: patch.stdoutBytes };
      }
      if (result.exitCode !== 0) return gitFailure('git diff', result);
      if (result.cut) {
        return fail(
          'RESOURCE_LIMIT',
          `the diff in '${repo.display}' is larger than the server can page (64 MiB)`,
          {
            hint: 'Narrow it with `paths` or a closer pair of revisions.',
          },
        );
      }
      const { files, patch } = parsed ?? { files: [], patch: Buffer.alloc(0) };
      const page = ctx.text(patch, { maxBytes: input.maxBytes, cursor: input.cursor });
      if (!page.ok) return page;
      const totals = {
        files: files.length,
        added: files.reduce((sum, file) => sum + (file.added ?? 0), 0),
        deleted: files.reduce((sum, file) => sum + (file.deleted ?? 0), 0),
      };
      const mode: 'worktree' | 'staged' | 'commit-worktree' | 'commit-staged' | 'commits' =
        to !== undefined
          ? 'commits'
          : staged
            ? input.from === undefined
              ? 'staged'
              : 'commit-staged'
            : from !== undefined
              ? 'commit-worktree'
              : 'worktree';
      return ok({
        repo: repo.display,
        mode,
        ...(from === undefined ? {} : { from }),
        ...(to === undefined ? {} : { to }),
        ...(input.cursor === undefined ? { files: files.slice(0, input.maxFiles) } : {}),
        totals,
        patch: page.value.text,
        patchBytes: page.value.totalBytes,
        ...(page.value.truncated === undefined ? {} : { truncated: page.value.truncated }),
      });
    },
  });
}
