import { readdir } from 'node:fs/promises';
import { cursorArg, defineTool, fail, ok, truncationSchema, type AnyTool, type Truncation } from '@keel/kit';
import * as z from 'zod';
import { checkResolved, type FsDeps } from '../fs/access.js';
import { callWalkRules, comparePaths, walk, type WalkEntry } from '../fs/walk.js';

const omittedCap = 100;

/** `tree`: a capped, breadth-first view of a directory tree that says what it left out and where. */
export function treeTool(deps: FsDeps): AnyTool {
  return defineTool({
    name: 'tree',
    title: 'Directory tree',
    description:
      'Shows a directory tree breadth-first (top levels first), capped by maxDepth and maxEntries. `omitted` names the directories not expanded (depth) or not fully shown (budget); follow truncated.nextCursor for the next entries.',
    input: z.object({
      path: z
        .string()
        .default('.')
        .describe('Directory to show, relative to the first root (default: the root).'),
      maxDepth: z.number().int().min(1).max(50).default(3).describe('Levels below the directory to show.'),
      maxEntries: z.number().int().min(1).max(5000).default(400).describe('Maximum entries to return.'),
      gitignore: z.boolean().default(true).describe('Skip what .gitignore files ignore, and .git itself.'),
      hidden: z.boolean().default(false).describe('Include names starting with a dot.'),
      cursor: cursorArg,
    }),
    output: z.object({
      path: z.string(),
      entries: z.array(
        z.object({
          path: z.string().describe('Relative to `path`.'),
          type: z.enum(['file', 'directory', 'symlink', 'other']),
        }),
      ),
      omitted: z
        .array(
          z.object({
            path: z.string().describe('A directory, relative to `path`.'),
            reason: z
              .enum(['depth', 'budget'])
              .describe('depth: below maxDepth; budget: past maxEntries (follow the cursor).'),
            entries: z.number().optional().describe('Its direct entries, when counted.'),
          }),
        )
        .describe(`Directories whose contents are not (fully) shown; at most ${omittedCap}.`),
      truncated: truncationSchema.optional(),
    }),
    effect: 'read',
    paths: { path: 'existing' },
    cursorIgnores: ['maxEntries'],
    render: (out) => {
      const lines = [out.path === '.' ? '.' : `${out.path}/`];
      for (const entry of out.entries) {
        const depth = entry.path.split('/').length;
        const name = entry.path.slice(entry.path.lastIndexOf('/') + 1);
        lines.push(
          `${'  '.repeat(depth)}${name}${entry.type === 'directory' ? '/' : entry.type === 'symlink' ? ' ->' : ''}`,
        );
      }
      for (const o of out.omitted)
        lines.push(
          `[${o.path}/: ${o.entries === undefined ? 'contents' : `${o.entries} entries`} not shown (${o.reason})]`,
        );
      if (out.truncated !== undefined)
        lines.push(`[more entries: pass cursor "${out.truncated.nextCursor}"]`);
      return lines.join('\n');
    },
    handler: async (input, ctx) => {
      const checked = checkResolved(ctx, deps, ctx.paths.path, 'read');
      if (!checked.ok) return checked;
      const { resolved, shown } = checked.value;
      const start = ctx.cursorOffset(input.cursor);
      if (!start.ok) return start;
      const offset = start.value;
      const probe = await readdir(resolved.real).catch((error: NodeJS.ErrnoException) => error);
      if (probe instanceof Error) {
        return fail(
          'INVALID_ARGUMENT',
          `'${shown}' is not a readable directory (${probe.code ?? probe.message})`,
          {
            hint: 'Pass a directory; use stat or read_file for files.',
          },
        );
      }
      const depthLimited: WalkEntry[] = [];
      const walker = walk({
        ...callWalkRules(resolved, deps.policy, ctx.jail, input),
        maxDepth: input.maxDepth,
        order: 'breadth-first',
        signal: ctx.signal,
        onDepthLimit: (entry) => depthLimited.push(entry),
      });
      const page: WalkEntry[] = [];
      const emittedDirs: WalkEntry[] = [];
      let index = 0;
      let next: WalkEntry | undefined;
      for await (const entry of walker) {
        if (index++ < offset) continue;
        if (page.length === input.maxEntries) {
          next = entry;
          break;
        }
        page.push(entry);
        if (entry.type === 'directory') emittedDirs.push(entry);
      }
      await walker.return(undefined);

      const omitted: Array<{ path: string; reason: 'depth' | 'budget'; entries?: number }> = [];
      const shownDirs = new Set(emittedDirs.map((d) => d.rel));
      for (const dir of depthLimited) {
        if (omitted.length >= omittedCap || !shownDirs.has(dir.rel)) continue;
        const count = await readdir(dir.real)
          .then((names) => names.length)
          .catch(() => undefined);
        omitted.push({ path: dir.rel, reason: 'depth', ...(count === undefined ? {} : { entries: count }) });
      }
      let truncated: Truncation | undefined;
      if (next !== undefined) {
        // Breadth-first: the directory the cut fell in is partly shown, and the shown directories after it are not yet listed.
        const parent = next.rel.includes('/') ? next.rel.slice(0, next.rel.lastIndexOf('/')) : '';
        const at = emittedDirs.findIndex((d) => d.rel === parent);
        const pending = [
          parent,
          ...emittedDirs
            .slice(at + 1)
            .filter((d) => d.depth < input.maxDepth)
            .map((d) => d.rel),
        ];
        for (const dir of pending) {
          if (omitted.length >= omittedCap) break;
          omitted.push({ path: dir === '' ? '.' : dir, reason: 'budget' });
        }
        truncated = {
          limit: input.maxEntries,
          unit: 'items',
          nextCursor: ctx.encodeCursor({ o: offset + page.length }),
        };
      }
      const entries = page
        .map((e) => ({ path: e.rel, type: e.type }))
        .sort((a, b) => comparePaths(a.path, b.path));
      return ok({ path: shown, entries, omitted, ...(truncated === undefined ? {} : { truncated }) });
    },
  });
}
