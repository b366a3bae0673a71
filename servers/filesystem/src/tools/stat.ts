import { lstat, stat } from 'node:fs/promises';
import path from 'node:path';
import { defineTool, ok, type AnyTool } from '@keel/kit';
import * as z from 'zod';
import { checkResolved, type FsDeps } from '../fs/access.js';
import { fsError } from '../fs/files.js';

/** `stat`: the metadata of one path. */
export function statTool(deps: FsDeps): AnyTool {
  return defineTool({
    name: 'stat',
    title: 'Path metadata',
    description:
      'Returns the metadata of a path: type, size, times, permissions, and for a symlink inside the roots where it points. Says exists: false (not an error) for a missing path, so it doubles as an existence check.',
    input: z.object({
      path: z.string().describe('Path to inspect, relative to the first root or absolute inside a root.'),
    }),
    output: z.object({
      path: z.string(),
      exists: z.boolean(),
      type: z.enum(['file', 'directory', 'symlink', 'other']).optional(),
      size: z.number().optional().describe('Bytes.'),
      mtime: z.string().optional(),
      ctime: z.string().optional(),
      birthtime: z.string().optional(),
      mode: z.string().optional().describe('Permission bits in octal, e.g. "644".'),
      symlink: z
        .boolean()
        .optional()
        .describe('Whether the path as given is a symlink (its target is described).'),
      target: z.string().optional().describe('Where the symlink points (the resolved path).'),
    }),
    effect: 'read',
    paths: { path: 'any' },
    render: (out) =>
      out.exists
        ? `${out.path}: ${out.type}, ${out.size} bytes, mode ${out.mode}, modified ${out.mtime}${out.symlink === true ? `, symlink to ${out.target}` : ''}`
        : `${out.path}: does not exist`,
    handler: async (input, ctx) => {
      const checked = checkResolved(ctx, deps, ctx.paths.path, 'read');
      if (!checked.ok) return checked;
      const { resolved, shown } = checked.value;
      if (!resolved.exists) return ok({ path: shown, exists: false });
      const given = path.resolve(ctx.jail.roots[0] ?? '/', input.path);
      const isLink = await lstat(given)
        .then((i) => i.isSymbolicLink())
        .catch(() => false);
      try {
        const info = await stat(resolved.real);
        return ok({
          path: isLink ? input.path : shown,
          exists: true,
          type: info.isDirectory() ? 'directory' : info.isFile() ? 'file' : 'other',
          size: info.size,
          mtime: info.mtime.toISOString(),
          ctime: info.ctime.toISOString(),
          birthtime: info.birthtime.toISOString(),
          mode: (info.mode & 0o7777).toString(8),
          ...(isLink ? { symlink: true, target: shown } : {}),
        });
      } catch (error) {
        return fsError(error, shown, 'stat');
      }
    },
  });
}
