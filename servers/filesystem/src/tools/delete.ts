import { rm, unlink } from 'node:fs/promises';
import { defineTool, fail, ok, type AnyTool } from '@keel/kit';
import * as z from 'zod';
import { type FsDeps } from '../fs/access.js';
import { entryOf, fsError } from '../fs/files.js';
import { lstat } from 'node:fs/promises';
import type { Stats } from 'node:fs';

/** `delete`: removes a file, a symlink, or (only when asked) a directory tree. */
export function deleteTool(deps: FsDeps): AnyTool {
  return defineTool({
    name: 'delete',
    title: 'Delete',
    description:
      'Deletes a file or symlink (the link, never its target); a directory only with recursive: true (everything under it). Deleting a path that does not exist succeeds with existed: false, so a retry is safe. Cannot be undone.',
    input: z.object({
      path: z.string().describe('Path to delete, relative to the first root or absolute inside a root.'),
      recursive: z.boolean().default(false).describe('Required to delete a directory and everything in it.'),
    }),
    output: z.object({
      path: z.string(),
      existed: z.boolean(),
      type: z.enum(['file', 'directory', 'symlink', 'other']).optional().describe('What was deleted.'),
    }),
    effect: 'destructive',
    idempotent: true,
    paths: { path: 'any' },
    render: (out) => (out.existed ? `deleted ${out.type} ${out.path}` : `${out.path} did not exist`),
    plan: async (input, ctx) => {
      const target = await entryOf(ctx.jail, input.path);
      if (!target.ok) return target;
      const { entry, root } = target.value;
      const shown = ctx.jail.display(entry);
      const verdict = deps.policy.checkWrite(entry, root, shown);
      if (!verdict.ok) return verdict;
      const info = await lstat(entry).catch(() => undefined);
      const type = info === undefined ? undefined : typeOf(info);
      if (type === 'directory' && !input.recursive) {
        return fail('INVALID_ARGUMENT', `'${shown}' is a directory`, {
          hint: 'Pass recursive: true to delete it and everything in it.',
        });
      }
      // Everything the delete removes counts, not only the path it names.
      if (type === 'directory') {
        const tree = await deps.policy.checkTree(entry, root, ctx.jail);
        if (!tree.ok) return tree;
      }
      return ok({
        effect: () => ({
          files:
            type === undefined
              ? []
              : [{ path: entry, change: 'delete' as const, tree: type === 'directory' }],
        }),
        apply: async () => {
          if (type === undefined) return ok({ path: shown, existed: false });
          try {
            if (type === 'directory') await rm(entry, { recursive: true });
            else await unlink(entry);
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code === 'ENOENT')
              return ok({ path: shown, existed: false });
            return fsError(error, shown, 'delete');
          }
          return ok({ path: shown, existed: true, type });
        },
      });
    },
  });
}

function typeOf(info: Stats): 'file' | 'directory' | 'symlink' | 'other' {
  return info.isSymbolicLink()
    ? 'symlink'
    : info.isDirectory()
      ? 'directory'
      : info.isFile()
        ? 'file'
        : 'other';
}
