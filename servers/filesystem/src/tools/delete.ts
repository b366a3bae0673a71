import { rm, unlink } from 'node:fs/promises';
import { defineTool, fail, ok, type AnyTool } from '@keel/kit';
import * as z from 'zod';
import { type FsDeps } from '../fs/access.js';
import { entryOf, fsError } from '../fs/files.js';
import { lstat } from 'node:fs/promises';

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
    handler: async (input, ctx) => {
      const target = await entryOf(ctx.jail, input.path);
      if (!target.ok) return target;
      const shown = ctx.jail.display(target.value.entry);
      const verdict = deps.policy.checkWrite(target.value.entry, target.value.root, shown);
      if (!verdict.ok) return verdict;
      const info = await lstat(target.value.entry).catch(() => undefined);
      if (info === undefined) return ok({ path: shown, existed: false });
      const type = info.isSymbolicLink()
        ? 'symlink'
        : info.isDirectory()
          ? 'directory'
          : info.isFile()
            ? 'file'
            : 'other';
      if (type === 'directory' && !input.recursive) {
        return fail('INVALID_ARGUMENT', `'${shown}' is a directory`, {
          hint: 'Pass recursive: true to delete it and everything in it.',
        });
      }
      // Everything the delete removes counts, not only the path it names.
      if (type === 'directory') {
        const tree = await deps.policy.checkTree(target.value.entry, target.value.root, ctx.jail);
        if (!tree.ok) return tree;
      }
      try {
        if (type === 'directory') await rm(target.value.entry, { recursive: true });
        else await unlink(target.value.entry);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return ok({ path: shown, existed: false });
        return fsError(error, shown, 'delete');
      }
      return ok({ path: shown, existed: true, type });
    },
  });
}
