import { constants } from 'node:fs';
import path from 'node:path';
import { cursorArg, defineTool, fail, ok, truncationSchema, type AnyTool, type Truncation } from '@keel/kit';
import { picomatch } from '../util/lazy.js';
import * as z from 'zod';
import { checkResolved, type FsDeps } from '../fs/access.js';
import { prefilterText, ripgrepArgs, runRipgrep } from '../fs/ripgrep.js';
import { before, lineTextCap, searchPage, type SearchCursor, type SearchedFile } from '../fs/searchPage.js';
import { compileSearchRegex } from '../fs/searchRegex.js';
import { callWalkRules, comparePaths, walk, walkAdmitsFile, type WalkRules } from '../fs/walk.js';

const matchSchema = z.object({
  path: z.string().describe('Relative to `path`.'),
  line: z.number().describe('1-based line number.'),
  column: z.number().describe('1-based column (UTF-16 code units) of the match.'),
  text: z.string().describe(`The matching line, cut to ${lineTextCap} characters around the match.`),
  before: z.array(z.string()).optional().describe('Context lines before.'),
  after: z.array(z.string()).optional().describe('Context lines after.'),
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function globTester(globs: readonly string[]): ((rel: string) => boolean) | undefined {
  if (globs.length === 0) return undefined;
  const testers = globs.map((glob) => picomatch()(glob, { dot: true, basename: !glob.includes('/') }));
  return (rel) => testers.some((test) => test(rel));
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
      filesSearched: z
        .number()
        .optional()
        .describe('Files read and searched on this page; absent when ripgrep chose the files to read.'),
      filesWithMatches: z.number(),
      skipped: z
        .object({
          binary: z.number(),
          tooLarge: z.number().describe('Files over maxFileBytes.'),
          unreadable: z.number(),
        })
        .optional()
        .describe('Files passed over on this page; absent when ripgrep chose the files to read.'),
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
        `${out.matches.length} matches in ${out.filesWithMatches} files${out.filesSearched === undefined ? '' : ` (${out.filesSearched} searched)`}${out.stoppedBy === undefined ? '' : `; stopped by ${out.stoppedBy}, pass cursor "${out.truncated?.nextCursor}" to continue`}`,
      );
      return lines.join('\n');
    },
    handler: async (input, ctx) => {
      const checked = checkResolved(ctx, deps, ctx.paths.path, 'read');
      if (!checked.ok) return checked;
      const { resolved, shown } = checked.value;
      const decoded = ctx.decodeCursor(input.cursor);
      if (!decoded.ok) return decoded;
      const resume = decoded.value as SearchCursor | undefined;
      if (resume !== undefined && (typeof resume.p !== 'string' || typeof resume.k !== 'number'))
        return fail('INVALID_ARGUMENT', 'cursor is not one search_text issued', {
          hint: 'Pass truncated.nextCursor from a search_text result as it was given, with the same arguments.',
        });
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
      const rules: WalkRules = {
        ...callWalkRules(resolved, deps.policy, ctx.jail, input),
        skip: (rel, type) =>
          // Whole directories before the cursor's file hold nothing this page searches.
          (type === 'directory' && resume !== undefined && before(rel, resume.p)) ||
          (excluded?.(rel) ?? false) ||
          (type === 'file' && included !== undefined && !included(rel)),
      };
      const rg = deps.ripgrep();
      const text = prefilterText(input.pattern, input.literal, input.caseSensitive);
      let native = false;
      let walkOnly = resume?.w === 1;
      const walked = (async function* () {
        for await (const entry of walk({
          ...rules,
          maxDepth: 1000,
          order: 'depth-first',
          signal: ctx.signal,
        }))
          if (entry.type === 'file') yield entry;
      })();
      // A tree of a few files is searched before ripgrep would have started: only a walk that goes
      // on past ripgrepMinFiles files hands the search to it. What was walked is not walked again.
      const head: SearchedFile[] = [];
      let large = false;
      if (!single && rg !== undefined && text !== undefined && !walkOnly) {
        for (let next = await walked.next(); next.done !== true; next = await walked.next()) {
          head.push(next.value);
          if (head.length >= deps.ripgrepMinFiles) {
            large = true;
            break;
          }
        }
      }
      let files: AsyncIterable<SearchedFile> | Iterable<SearchedFile> | undefined;
      if (single) {
        files = [{ rel: shown.slice(shown.lastIndexOf('/') + 1), real: resolved.real }];
      } else if (large && rg !== undefined && text !== undefined) {
        const listed = await runRipgrep(
          rg,
          resolved.real,
          ripgrepArgs({
            text,
            caseSensitive: input.caseSensitive,
            gitignore: input.gitignore,
            hidden: input.hidden,
            maxFileBytes: input.maxFileBytes,
          }),
          // What the walk before it left of the budget.
          { timeoutMs: Math.max(1, input.timeBudgetMs - (Date.now() - started)), signal: ctx.signal },
        );
        if (listed.kind === 'listed') {
          const admits = await walkAdmitsFile(rules);
          files = listed.files
            .filter(admits)
            .sort(comparePaths)
            .map((rel) => ({ rel, real: path.join(resolved.real, rel) }));
          native = true;
        } else if (listed.kind === 'timedOut') {
          // The walk goes on from here, page after page, so a tree too big for ripgrep to finish
          // in the budget still moves forward at the walk's pace.
          walkOnly = true;
        }
        // Failed or out of time: the walk, which stops at the same budget with a cursor.
      }
      files ??= (async function* () {
        yield* head;
        yield* walked;
      })();

      const out = await searchPage(files, {
        resume,
        jail: ctx.jail,
        signal: ctx.signal,
        started,
        timeBudgetMs: input.timeBudgetMs,
        maxFileBytes: input.maxFileBytes,
        maxMatches: input.maxMatches,
        maxMatchesPerFile: input.maxMatchesPerFile,
        contextLines: input.contextLines,
        regex,
        quick,
        needle,
      });
      // The walk, if ripgrep's list took its place, or a page that stopped early.
      await walked.return(undefined);
      let truncated: Truncation | undefined;
      if (out.next !== undefined)
        truncated = {
          limit: input.maxMatches,
          unit: 'items',
          nextCursor: ctx.encodeCursor(walkOnly ? { ...out.next, w: 1 } : out.next),
        };
      return ok({
        path: shown,
        matches: out.matches,
        ...(native ? {} : { filesSearched: out.filesSearched }),
        filesWithMatches: out.filesWithMatches,
        ...(native ? {} : { skipped: out.skipped }),
        ...(out.stoppedBy === undefined ? {} : { stoppedBy: out.stoppedBy }),
        ...(truncated === undefined ? {} : { truncated }),
      });
    },
  });
}
