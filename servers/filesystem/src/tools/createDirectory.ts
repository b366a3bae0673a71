import { mkdir, stat } from 'node:fs/promises';
import { defineTool, fail, ok, type AnyTool } from '@keel/kit';
import * as z from 'zod';
import { checkResolved, type FsDeps } from '../fs/access.js';
import { fsError } from '../fs/files.js';

/** `create_directory`: mkdir -p inside the roots. */
export function createDirectoryTool(deps: FsDeps): AnyTool {
  return defineTool({
    name: 'create_directory',
    title: 'Create a directory',
    description:
      'Creates a directory and any missing parents (like mkdir -p). Succeeds with created: false when it already exists; fails if a file is in the way.',
    input: z.object({
      path: z.string().describe('Directory to create, relative to the first root or absolute inside a root.'),
    }),
    output: z.object({ path: z.string(), created: z.boolean().describe('False when it already existed.') }),
    effect: 'write',
    idempotent: true,
    paths: { path: 'any' },
    render: (out) => `${out.created ? 'created' : 'already exists:'} ${out.path}/`,
    plan: async (_input, ctx) => {
      const checked = checkResolved(ctx, deps, ctx.paths.path, 'write');
      if (!checked.ok) return checked;
      const { resolved, shown } = checked.value;
      if (resolved.exists && !(await stat(resolved.real)).isDirectory()) {
        return fail('ALREADY_EXISTS', `'${shown}' exists and is a file`, {
          hint: 'Pick another name, or delete the file first.',
        });
      }
      return ok({
        effect: () => ({
          files: resolved.exists ? [] : [{ path: resolved.real, change: 'create' as const, directory: true }],
        }),
        apply: async () => {
          if (resolved.exists) return ok({ path: shown, created: false });
          try {
            await mkdir(resolved.real, { recursive: true });
          } catch (error) {
            return fsError(error, shown, 'create directory');
          }
          // A parent swapped for a symlink while creating would put the directory elsewhere; check where it landed.
          const again = await ctx.jail.resolve(resolved.real);
          if (!again.ok) return again;
          return ok({ path: shown, created: true });
        },
      });
    },
  });
}
