import { fail, ok } from '@keel/kit';
import * as z from 'zod';
import { refArg, repoArg, repoPaths, resolveCommit } from '../git/args.js';
import { gitFailure } from '../git/runGit.js';
import { defineRepoTool, type GitTool } from '../git/withRepo.js';

const maxRange = 2000;

const maxLineChars = 2000;

// A minified file can hold megabytes on one line; the line is cut so the range stays answerable.
function cutContent(content: string): { content: string; contentTruncated?: true } {
  return content.length > maxLineChars
    ? { content: content.slice(0, maxLineChars), contentTruncated: true }
    : { content };
}

interface BlameLine {
  line: number;
  sha: string;
  author: string;
  authorEmail: string;
  authorTime: string;
  summary: string;
  content: string;
  contentTruncated?: true;
}

/** Parses `git blame --line-porcelain`: every line carries its commit's full header. */
function parseLinePorcelain(output: string): BlameLine[] {
  const lines: BlameLine[] = [];
  let current: Partial<BlameLine> = {};
  for (const raw of output.split('\n')) {
    if (raw.startsWith('\t')) {
      lines.push({
        line: current.line ?? 0,
        sha: current.sha ?? '',
        author: current.author ?? '',
        authorEmail: current.authorEmail ?? '',
        authorTime: current.authorTime ?? '',
        summary: current.summary ?? '',
        ...cutContent(raw.slice(1)),
      });
      current = {};
      continue;
    }
    const header = /^([0-9a-f]{40,64}) \d+ (\d+)/.exec(raw);
    if (header !== null) {
      current.sha = header[1]!;
      current.line = Number(header[2]);
    } else if (raw.startsWith('author ')) current.author = raw.slice(7);
    else if (raw.startsWith('author-mail ')) current.authorEmail = raw.slice(12).replace(/^<|>$/g, '');
    else if (raw.startsWith('author-time '))
      current.authorTime = new Date(Number(raw.slice(12)) * 1000).toISOString();
    else if (raw.startsWith('summary ')) current.summary = raw.slice(8);
  }
  return lines;
}

/** `git_blame`: who last changed each line of a range, at a revision or in the working tree. */
export function gitBlameTool(): GitTool {
  return defineRepoTool({
    name: 'git_blame',
    title: 'Git blame',
    description: `Shows, for each line in a range of a file, the commit, author and date that last changed it. At most ${maxRange} lines per call.`,
    input: z.object({
      repo: repoArg,
      path: z.string().min(1).max(4096).describe('The file, relative to the repository top level.'),
      ref: refArg('Blame the file as of this revision; default: the working tree version.').optional(),
      startLine: z.number().int().positive().default(1).describe('First line (1-based).'),
      endLine: z
        .number()
        .int()
        .positive()
        .optional()
        .describe(`Last line (inclusive); default startLine + 199, at most startLine + ${maxRange - 1}.`),
    }),
    output: z.object({
      repo: z.string(),
      path: z.string(),
      ref: z.object({ ref: z.string(), sha: z.string() }).optional(),
      startLine: z.number(),
      endLine: z.number(),
      lines: z.array(
        z.object({
          line: z.number(),
          sha: z.string(),
          author: z.string(),
          authorEmail: z.string(),
          authorTime: z.string(),
          summary: z.string(),
          content: z.string(),
          contentTruncated: z
            .literal(true)
            .optional()
            .describe(`The line was longer than ${maxLineChars} characters and is cut.`),
        }),
      ),
    }),
    effect: 'read',
    paths: { repo: 'existing' },
    render: (out) =>
      out.lines
        .map(
          (line) =>
            `${line.sha.slice(0, 10)} (${line.author} ${line.authorTime.slice(0, 10)} ${line.line}) ${line.content}`,
        )
        .join('\n'),
    handler: async (input, ctx) => {
      const endLine = input.endLine ?? input.startLine + 199;
      if (endLine < input.startLine)
        return fail('INVALID_ARGUMENT', `endLine ${endLine} is before startLine ${input.startLine}`, {
          hint: 'Pass endLine >= startLine.',
        });
      if (endLine - input.startLine + 1 > maxRange) {
        return fail(
          'INVALID_ARGUMENT',
          `the range ${input.startLine}-${endLine} has more than ${maxRange} lines`,
          { hint: `Ask for at most ${maxRange} lines per call.` },
        );
      }
      const repo = ctx.prepared;
      const file = repoPaths(repo, [input.path], 'path');
      if (!file.ok) return file;
      let ref: { ref: string; sha: string } | undefined;
      if (input.ref !== undefined) {
        const sha = await resolveCommit(repo, input.ref, 'ref');
        if (!sha.ok) return sha;
        ref = { ref: input.ref, sha: sha.value };
      }
      const result = await repo.git([
        'blame',
        '--line-porcelain',
        '--no-textconv',
        '-L',
        `${input.startLine},${endLine}`,
        ...(ref === undefined ? [] : [ref.sha]),
        '--',
        file.value[0]!,
      ]);
      if (result.exitCode !== 0) {
        const lines = /has only (\d+) lines?/.exec(result.stderr);
        if (lines !== null) {
          return fail(
            'INVALID_ARGUMENT',
            `'${input.path}' has only ${lines[1]} lines; startLine ${input.startLine} is past its end`,
            { hint: `Pass startLine between 1 and ${lines[1]}.` },
          );
        }
        return gitFailure(
          `git blame '${input.path}'`,
          result,
          'Check the path (relative to the repository top level) and that the file is tracked at that revision.',
        );
      }
      const lines = parseLinePorcelain(result.stdout);
      const last = lines.at(-1)?.line ?? input.startLine - 1;
      return ok({
        repo: repo.display,
        path: file.value[0]!,
        ...(ref === undefined ? {} : { ref }),
        startLine: input.startLine,
        endLine: last,
        lines,
      });
    },
  });
}
