import { constants } from 'node:fs';
import { cursorArg, defineTool, ok, truncationSchema, type AnyTool, type Truncation } from '@keel/kit';
import { picomatch } from '../util/lazy.js';
import * as z from 'zod';
import { checkResolved, type FsDeps } from '../fs/access.js';
import { readSmallFileSync } from '../fs/files.js';
import { compileSearchRegex } from '../fs/searchRegex.js';
import { walk, type WalkEntry } from '../fs/walk.js';

const lineTextCap = 400;

const matchSchema = z.object({
  path: z.string().describe('Relative to `path`.'),
  line: z.number().describe('1-based line number.'),
  column: z.number().describe('1-based column (UTF-16 code units) of the match.'),
  text: z.string().describe(`The matching line, cut to ${lineTextCap} characters around the match.`),
  before: z.array(z.string()).optional().describe('Context lines before.'),
  after: z.array(z.string()).optional().describe('Context lines after.'),
});

type Match = z.output<typeof matchSchema>;

interface SearchCursor {
  /** Index (among searched files, in walk order) of the file to resume in. */
  f: number;
  /** Matches of that file already returned. */
  k: number;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function globTester(globs: readonly string[]): ((rel: string) => boolean) | undefined {
  if (globs.length === 0) return undefined;
  const testers = globs.map((glob) => picomatch()(glob, { dot: true, basename: !glob.includes('/') }));
  return (rel) => testers.some((test) => test(rel));
}

function clip(line: string, column: number): string {
  if (line.length <= lineTextCap) return line;
  const start = Math.max(0, Math.min(column - lineTextCap / 4, line.length - lineTextCap));
  return `${start > 0 ? '…' : ''}${line.slice(start, start + lineTextCap)}${start + lineTextCap < line.length ? '…' : ''}`;
}

/**
 * `search_text`: regex or literal search through file contents under a directory, with every limit a
 * model needs — matches per file and in total, file size, time — stopping as soon as it is full.
 */
export function searchTextTool(deps: FsDeps): AnyTool {
  return defineTool({
    name: 'search_text',
    title: 'Search file contents',
    description:
      'Searches file contents line by line for a regular expression (JavaScript syntax) or literal text, under a directory. Skips binary files, files over maxFileBytes, .gitignored paths and .git. Stops at maxMatches or timeBudgetMs; follow truncated.nextCursor to continue.',
    input: z.object({
      pattern: z
        .string()
        .min(1)
        .max(1000)
        .describe('Regular expression, or literal text when literal is true.'),
      literal: z.boolean().default(false).describe('Treat pattern as plain text.'),
      caseSensitive: z.boolean().default(true).describe('Match case exactly.'),
      path: z
        .string()
        .default('.')
        .describe('Directory (or a single file) to search, relative to the first root.'),
      include: z
        .array(z.string().max(1000))
        .max(50)
        .default([])
        .describe('Only files matching one of these globs (one without "/" matches names at any depth).'),
      exclude: z
        .array(z.string().max(1000))
        .max(50)
        .default([])
        .describe('Skip files and directories matching one of these globs.'),
      contextLines: z
        .number()
        .int()
        .min(0)
        .max(10)
        .default(0)
        .describe('Lines of context before and after each match.'),
      maxMatchesPerFile: z
        .number()
        .int()
        .min(1)
        .max(1000)
        .default(20)
        .describe('Stop reporting a file after this many matches.'),
      maxMatches: z.number().int().min(1).max(2000).default(100).describe('Maximum matches to return.'),
      maxFileBytes: z
        .number()
        .int()
        .min(1)
        .max(67_108_864)
        .default(2_097_152)
        .describe('Skip files larger than this (default 2 MiB).'),
      gitignore: z.boolean().default(true).describe('Skip what .gitignore files ignore, and .git itself.'),
      hidden: z.boolean().default(false).describe('Include dotfiles and dot-directories.'),
      timeBudgetMs: z
        .number()
        .int()
        .min(1)
        .max(60_000)
        .default(10_000)
        .describe('Stop after this long and return what was found, with a cursor.'),
      cursor: cursorArg,
    }),
    output: z.object({
      path: z.string(),
      matches: z.array(matchSchema),
      filesSearched: z.number(),
      filesWithMatches: z.number(),
      skipped: z.object({
        binary: z.number(),
        tooLarge: z.number().describe('Files over maxFileBytes.'),
        unreadable: z.number(),
      }),
      stoppedBy: z
        .enum(['maxMatches', 'timeBudget'])
        .optional()
        .describe('Why the search stopped before the end.'),
      truncated: truncationSchema.optional(),
    }),
    effect: 'read',
    paths: { path: 'existing' },
    cursorIgnores: ['maxMatches', 'timeBudgetMs'],
    render: (out) => {
      const lines: string[] = [];
      for (const m of out.matches) {
        for (const [i, text] of (m.before ?? []).entries())
          lines.push(`${m.path}-${m.line - (m.before?.length ?? 0) + i}-${text}`);
        lines.push(`${m.path}:${m.line}:${m.text}`);
        for (const [i, text] of (m.after ?? []).entries()) lines.push(`${m.path}-${m.line + 1 + i}-${text}`);
      }
      lines.push(
        `${out.matches.length} matches in ${out.filesWithMatches} files (${out.filesSearched} searched)${out.stoppedBy === undefined ? '' : `; stopped by ${out.stoppedBy}, pass cursor "${out.truncated?.nextCursor}" to continue`}`,
      );
      return lines.join('\n');
    },
    handler: async (input, ctx) => {
      const checked = checkResolved(ctx, deps, ctx.paths.path, 'read');
      if (!checked.ok) return checked;
      const { resolved, shown } = checked.value;
      const decoded = ctx.decodeCursor(input.cursor);
      if (!decoded.ok) return decoded;
      const resume = (decoded.value as SearchCursor | undefined) ?? { f: 0, k: 0 };
      const compiled = compileSearchRegex(input.literal ? escapeRegExp(input.pattern) : input.pattern, {
        global: true,
        multiline: false,
        caseSensitive: input.caseSensitive,
      });
      if (!compiled.ok) return compiled;
      const regex = compiled.value;
      const needle = input.literal && input.caseSensitive ? Buffer.from(input.pattern, 'utf8') : undefined;
      const quick = new RegExp(regex.source, regex.flags.replace('g', 'm'));
      const included = globTester(input.include);
      const excluded = globTester(input.exclude);
      const started = Date.now();

      const info = await ctx.jail.open(resolved, constants.O_RDONLY).then(async (opened) => {
        if (!opened.ok) return undefined;
        const stat = await opened.value.stat();
        await opened.value.close();
        return stat;
      });
      const single = info !== undefined && !info.isDirectory();
      const files: AsyncGenerator<WalkEntry> = single
        ? (async function* () {
            yield {
              rel: shown.slice(shown.lastIndexOf('/') + 1),
              real: resolved.real,
              type: 'file' as const,
              depth: 1,
            };
          })()
        : walk({
            base: resolved.real,
            root: resolved.root,
            policy: deps.policy,
            jail: ctx.jail,
            gitignore: input.gitignore,
            hidden: input.hidden,
            maxDepth: 1000,
            order: 'depth-first',
            signal: ctx.signal,
            skip: (rel, type) =>
              (excluded?.(rel) ?? false) || (type === 'file' && included !== undefined && !included(rel)),
          });

      const matches: Match[] = [];
      const skipped = { binary: 0, tooLarge: 0, unreadable: 0 };
      let filesSearched = 0;
      let filesWithMatches = 0;
      let current = -1;
      let stoppedBy: 'maxMatches' | 'timeBudget' | undefined;
      let next: SearchCursor | undefined;
      let sliceStarted = Date.now();
      for await (const entry of files) {
        if (entry.type !== 'file') continue;
        current++;
        if (current < resume.f) continue; // Searched on an earlier page.
        if (Date.now() - sliceStarted > 20) {
          // Reads are synchronous; let cancellation, timeouts and other calls in between slices.
          await new Promise((resolve) => setImmediate(resolve));
          sliceStarted = Date.now();
        }
        // At least one file per call, so a cursor always moves forward however small the budget.
        if (current > resume.f && (Date.now() - started > input.timeBudgetMs || ctx.signal.aborted)) {
          stoppedBy = 'timeBudget';
          next = { f: current, k: current === resume.f ? resume.k : 0 };
          break;
        }
        const loaded = readSmallFileSync(ctx.jail, entry.real, input.maxFileBytes);
        if (loaded.kind !== 'text') {
          skipped[loaded.kind]++;
          continue;
        }
        filesSearched++;
        // A case-sensitive literal can reject a file on its bytes, without decoding it.
        if (needle !== undefined && loaded.data.indexOf(needle) === -1) continue;
        const text = loaded.data.toString('utf8');
        if (!quick.test(text)) continue;
        const skip = current === resume.f ? resume.k : 0;
        const lines = text.split('\n');
        let found = 0;
        let cutHere = false;
        for (let i = 0; i < lines.length; i++) {
          const line = lines[i]!.endsWith('\r') ? lines[i]!.slice(0, -1) : lines[i]!;
          regex.lastIndex = 0;
          const hit = regex.exec(line);
          if (hit === null) continue;
          found++;
          if (found <= skip) continue;
          if (found > input.maxMatchesPerFile) break;
          if (matches.length === input.maxMatches) {
            cutHere = true;
            break;
          }
          const context = input.contextLines;
          matches.push({
            path: entry.rel,
            line: i + 1,
            column: hit.index + 1,
            text: clip(line, hit.index),
            ...(context === 0
              ? {}
              : {
                  before: lines.slice(Math.max(0, i - context), i).map((l) => clip(l.replace(/\r$/, ''), 0)),
                }),
            ...(context === 0
              ? {}
              : { after: lines.slice(i + 1, i + 1 + context).map((l) => clip(l.replace(/\r$/, ''), 0)) }),
          });
        }
        if (found > skip) filesWithMatches++;
        if (cutHere) {
          stoppedBy = 'maxMatches';
          next = { f: current, k: found - 1 };
          break;
        }
        if (matches.length === input.maxMatches) {
          // Full exactly at a file's end: there may be nothing more, but only the next page can tell.
          stoppedBy = 'maxMatches';
          next = { f: current + 1, k: 0 };
          break;
        }
      }
      await files.return(undefined);
      let truncated: Truncation | undefined;
      if (next !== undefined)
        truncated = { limit: input.maxMatches, unit: 'items', nextCursor: ctx.encodeCursor(next) };
      return ok({
        path: shown,
        matches,
        filesSearched,
        filesWithMatches,
        skipped,
        ...(stoppedBy === undefined ? {} : { stoppedBy }),
        ...(truncated === undefined ? {} : { truncated }),
      });
    },
  });
}
