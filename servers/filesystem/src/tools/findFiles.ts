import {
  budgetArg,
  cursorArg,
  defineTool,
  fail,
  ok,
  truncationSchema,
  type AnyTool,
  type Truncation,
} from '@keel/kit';
import { picomatch } from '../util/lazy.js';
import * as z from 'zod';
import { checkResolved, type FsDeps } from '../fs/access.js';
import { callWalkRules, walk } from '../fs/walk.js';

/** `find_files`: paths matching a glob under a directory, .gitignore aware, stopping as soon as the page is full. */
export function findFilesTool(deps: FsDeps): AnyTool {
  return defineTool({
    name: 'find_files',
    title: 'Find files by glob',
    description:
      'Finds paths matching a glob (*, **, ?, [abc], {a,b}) under a directory. A pattern without "/" matches the name at any depth ("*.ts"); with "/" the path relative to `path` ("src/**/*.test.ts"). total is known on the last page only; follow truncated.nextCursor for more.',
    input: z.object({
      pattern: z.string().min(1).max(1000).describe('Glob to match.'),
      path: z
        .string()
        .default('.')
        .describe('Directory to search under, relative to the first root (default: the root).'),
      type: z
        .enum(['file', 'directory', 'any'])
        .default('any')
        .describe('Only files, only directories, or both.'),
      gitignore: z.boolean().default(true).describe('Skip what .gitignore files ignore, and .git itself.'),
      hidden: z.boolean().default(false).describe('Include dotfiles and descend into dot-directories.'),
      maxDepth: z
        .number()
        .int()
        .min(1)
        .max(100)
        .default(100)
        .describe('Deepest level to search (1 = direct children).'),
      limit: budgetArg({ default: 200, max: 10_000, unit: 'paths', what: 'matches' }),
      cursor: cursorArg,
    }),
    output: z.object({
      path: z.string(),
      matches: z.array(
        z.object({
          path: z.string().describe('Relative to `path`.'),
          type: z.enum(['file', 'directory', 'symlink', 'other']),
        }),
      ),
      total: z.number().optional().describe('All matches, known when this is the last page.'),
      truncated: truncationSchema.optional(),
    }),
    effect: 'read',
    paths: { path: 'existing' },
    cursorIgnores: ['limit'],
    render: (out) =>
      [
        ...out.matches.map((m) => `${m.path}${m.type === 'directory' ? '/' : ''}`),
        out.truncated === undefined
          ? `${out.total ?? out.matches.length} matches`
          : `[more matches: pass cursor "${out.truncated.nextCursor}"]`,
      ].join('\n'),
    handler: async (input, ctx) => {
      const checked = checkResolved(ctx, deps, ctx.paths.path, 'read');
      if (!checked.ok) return checked;
      const { resolved, shown } = checked.value;
      const start = ctx.cursorOffset(input.cursor);
      if (!start.ok) return start;
      const offset = start.value;
      let matcher: (p: string) => boolean;
      try {
        matcher = picomatch()(input.pattern, { dot: input.hidden, basename: !input.pattern.includes('/') });
      } catch (error) {
        return fail(
          'INVALID_ARGUMENT',
          `pattern '${input.pattern}' is not a valid glob: ${(error as Error).message}`,
          {
            hint: 'Use glob syntax such as "**/*.ts" or "src/*.{js,ts}".',
          },
        );
      }
      const walker = walk({
        ...callWalkRules(resolved, deps.policy, ctx.jail, input),
        maxDepth: input.maxDepth,
        order: 'depth-first',
        signal: ctx.signal,
      });
      const matches: Array<{ path: string; type: 'file' | 'directory' | 'symlink' | 'other' }> = [];
      let seen = 0;
      let more = false;
      for await (const entry of walker) {
        if (input.type === 'file' && entry.type === 'directory') continue;
        if (input.type === 'directory' && entry.type !== 'directory') continue;
        if (!matcher(entry.rel)) continue;
        if (seen++ < offset) continue;
        if (matches.length === input.limit) {
          more = true;
          break;
        }
        matches.push({ path: entry.rel, type: entry.type });
      }
      await walker.return(undefined);
      if (ctx.signal.aborted) return fail('CANCELLED', 'find_files was stopped before it finished');
      let truncated: Truncation | undefined;
      if (more)
        truncated = {
          limit: input.limit,
          unit: 'items',
          nextCursor: ctx.encodeCursor({ o: offset + matches.length }),
        };
      return ok({
        path: shown,
        matches,
        ...(more ? {} : { total: offset + matches.length }),
        ...(truncated === undefined ? {} : { truncated }),
      });
    },
  });
}
