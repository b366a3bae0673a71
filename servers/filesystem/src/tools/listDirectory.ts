import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
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
import { fsError, isWriteTemp } from '../fs/files.js';
import { relativeOf } from '../fs/policy.js';

const entrySchema = z.object({
  name: z.string(),
  type: z.enum(['file', 'directory', 'symlink', 'other']),
  size: z.number().describe('Bytes (0 for directories).'),
  mtime: z.string().describe('Last modification time (ISO 8601).'),
});

/** `list_directory`: one directory's entries with type, size and mtime; sorted, filtered, paginated. */
export function listDirectoryTool(deps: FsDeps): AnyTool {
  return defineTool({
    name: 'list_directory',
    title: 'List a directory',
    description:
      'Lists the entries of one directory with type, size and mtime. Sort by name, size or mtime; filter names with a glob; hide dotfiles if asked. Paginated: follow truncated.nextCursor for more. Symlinks are listed as symlinks, not followed.',
    input: z.object({
      path: z
        .string()
        .default('.')
        .describe('Directory to list, relative to the first root (default: the root).'),
      sort: z.enum(['name', 'size', 'mtime']).default('name').describe('Sort key.'),
      order: z.enum(['asc', 'desc']).default('asc').describe('Sort order.'),
      glob: z.string().max(1000).optional().describe('Only names matching this glob (e.g. "*.ts").'),
      hidden: z.boolean().default(true).describe('Include names starting with a dot.'),
      limit: budgetArg({ default: 200, max: 5000, unit: 'entries', what: 'the listing' }),
      cursor: cursorArg,
    }),
    output: z.object({
      path: z.string(),
      entries: z.array(entrySchema),
      total: z.number().describe('Entries after filtering.'),
      truncated: truncationSchema.optional(),
    }),
    effect: 'read',
    paths: { path: 'existing' },
    cursorIgnores: ['limit'],
    render: (out) =>
      [
        ...out.entries.map(
          (e) =>
            `${e.type === 'directory' ? 'd' : e.type === 'symlink' ? 'l' : e.type === 'file' ? '-' : '?'} ${String(e.size).padStart(10)} ${e.mtime} ${e.name}${e.type === 'directory' ? '/' : ''}`,
        ),
        out.truncated === undefined
          ? `${out.total} entries`
          : `${out.entries.length} of ${out.total} entries; pass cursor "${out.truncated.nextCursor}" for more`,
      ].join('\n'),
    handler: async (input, ctx) => {
      const checked = checkResolved(ctx, deps, ctx.paths.path, 'read');
      if (!checked.ok) return checked;
      const { resolved, shown } = checked.value;
      let names: string[];
      try {
        names = await readdir(resolved.real);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOTDIR') {
          return fail('INVALID_ARGUMENT', `'${shown}' is a file, not a directory`, {
            hint: 'Use stat or read_file for files.',
          });
        }
        return fsError(error, shown, 'list');
      }
      const matches = input.glob === undefined ? undefined : picomatch()(input.glob, { dot: true });
      const kept = names.filter(
        (name) =>
          (input.hidden || !name.startsWith('.')) &&
          !isWriteTemp(name) &&
          (matches === undefined || matches(name)) &&
          !deps.policy.isDenied(relativeOf(resolved.root, path.join(resolved.real, name))) &&
          !ctx.jail.isDenied(path.join(resolved.real, name)),
      );
      const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
      const describe = async (batchNames: readonly string[]): Promise<z.output<typeof entrySchema>[]> => {
        const out: z.output<typeof entrySchema>[] = [];
        // lstat in parallel batches: a 10k-entry directory should not cost 10k sequential round trips.
        for (let i = 0; i < batchNames.length; i += 128) {
          const batch = batchNames.slice(i, i + 128);
          const infos = await Promise.all(
            batch.map((name) => lstat(path.join(resolved.real, name)).catch(() => undefined)),
          );
          batch.forEach((name, j) => {
            const info = infos[j];
            if (info === undefined) return; // Removed while listing.
            out.push({
              name,
              type: info.isDirectory()
                ? 'directory'
                : info.isFile()
                  ? 'file'
                  : info.isSymbolicLink()
                    ? 'symlink'
                    : 'other',
              size: info.isDirectory() ? 0 : info.size,
              mtime: info.mtime.toISOString(),
            });
          });
        }
        return out;
      };
      let items: z.output<typeof entrySchema>[];
      let total: number;
      let truncated: Truncation | undefined;
      if (input.sort === 'name') {
        // Sorted by name, only the page's entries need their metadata.
        kept.sort(byName);
        if (input.order === 'desc') kept.reverse();
        const page = ctx.list(kept, { limit: input.limit, cursor: input.cursor });
        if (!page.ok) return page;
        items = await describe(page.value.items);
        total = page.value.total;
        truncated = page.value.truncated;
      } else {
        const entries = await describe(kept);
        entries.sort((a, b) => {
          const primary = input.sort === 'size' ? a.size - b.size : a.mtime.localeCompare(b.mtime);
          return primary !== 0 ? primary : byName(a.name, b.name);
        });
        if (input.order === 'desc') entries.reverse();
        const page = ctx.list(entries, { limit: input.limit, cursor: input.cursor });
        if (!page.ok) return page;
        items = page.value.items;
        total = page.value.total;
        truncated = page.value.truncated;
      }
      return ok({ path: shown, entries: items, total, ...(truncated === undefined ? {} : { truncated }) });
    },
  });
}
