import { link, lstat, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Stats } from 'node:fs';
import { defineTool, fail, ok, type AnyTool, type Outcome, type ToolContext } from '@keel/kit';
import * as z from 'zod';
import { type FsDeps } from '../fs/access.js';
import { entryOf, fsError } from '../fs/files.js';
import { fileLines } from '../fs/lines.js';

/** `move`: renames a file or directory inside the roots; never replaces a destination unless told to. */
export function moveTool(deps: FsDeps): AnyTool {
  return defineTool({
    name: 'move',
    title: 'Move or rename',
    description:
      'Moves or renames a file, directory or symlink (the link itself, not its target) within the roots. Fails with ALREADY_EXISTS if the destination exists, unless overwrite is true (then a file destination is replaced; a directory destination must be empty). Destructive only through overwrite.',
    input: z.object({
      source: z.string().describe('Path to move, relative to the first root or absolute inside a root.'),
      destination: z.string().describe('New path (parent directory must exist).'),
      overwrite: z.boolean().default(false).describe('Replace an existing destination.'),
    }),
    output: z.object({
      source: z.string(),
      destination: z.string(),
      replaced: z.boolean().describe('Whether an existing destination was replaced.'),
    }),
    effect: 'destructive',
    // 'any', not 'existing': a retried move whose first run did move the file must reach reconcile, not stop at NOT_FOUND.
    paths: { source: 'any', destination: 'any' },
    render: (out) =>
      `moved ${out.source} -> ${out.destination}${out.replaced ? ' (replaced the destination)' : ''}`,
    // After a crash: the move happened if the source is gone and the destination is there.
    reconcile: async (input, ctx) => {
      const from = await entryOf(ctx.jail, input.source);
      const to = await entryOf(ctx.jail, input.destination);
      if (!from.ok) return { status: 'failed', error: from.error };
      if (!to.ok) return { status: 'failed', error: to.error };
      if (from.value.exists || !to.value.exists) return { status: 'not_done' };
      return {
        status: 'done',
        value: {
          source: ctx.jail.display(from.value.entry),
          destination: ctx.jail.display(to.value.entry),
          replaced: false,
        },
      };
    },
    plan: async (input, ctx) => {
      const from = await entryOf(ctx.jail, input.source);
      if (!from.ok) return from;
      const to = await entryOf(ctx.jail, input.destination);
      if (!to.ok) return to;
      const fromShown = ctx.jail.display(from.value.entry);
      const toShown = ctx.jail.display(to.value.entry);
      for (const [entry, root, shown] of [
        [from.value.entry, from.value.root, fromShown],
        [to.value.entry, to.value.root, toShown],
      ] as const) {
        const verdict = deps.policy.checkWrite(entry, root, shown);
        if (!verdict.ok) return verdict;
      }
      if (!from.value.exists)
        return fail('NOT_FOUND', `source '${fromShown}' does not exist`, {
          hint: 'Check the path; list the parent directory.',
        });
      const same = from.value.entry === to.value.entry;
      const info = await lstat(from.value.entry);
      // Everything the move carries away counts, not only the path it names.
      if (!same && info.isDirectory()) {
        const tree = await deps.policy.checkTree(from.value.entry, from.value.root, ctx.jail);
        if (!tree.ok) return tree;
      }
      if (
        !same &&
        info.isDirectory() &&
        (to.value.entry + path.sep).startsWith(from.value.entry + path.sep)
      ) {
        return fail('INVALID_ARGUMENT', `cannot move '${fromShown}' into itself ('${toShown}')`, {
          hint: 'Pick a destination outside the source directory.',
        });
      }
      if (!same && to.value.exists && !input.overwrite) {
        return fail('ALREADY_EXISTS', `destination '${toShown}' already exists`, {
          hint: 'Pass overwrite: true to replace it, or pick another destination.',
        });
      }
      return ok({
        effect: async () => {
          if (same) return { files: [] };
          // A file the move replaces loses its lines.
          const replaced = to.value.exists ? await replacedLines(ctx, to.value.entry) : 0;
          return {
            files: [
              {
                path: to.value.entry,
                change: 'rename' as const,
                from: from.value.entry,
                tree: info.isDirectory(),
                linesRemoved: replaced,
              },
            ],
          };
        },
        apply: async () => {
          if (same) return ok({ source: fromShown, destination: toShown, replaced: false });
          return await moveEntry(from.value.entry, to.value.entry, { ...input, fromShown, toShown, info });
        },
      });
    },
  });
}

/** The lines of a regular text file about to be replaced; 0 for anything else. */
async function replacedLines(ctx: ToolContext, entry: string): Promise<number> {
  const info = await lstat(entry).catch(() => undefined);
  if (info?.isFile() !== true) return 0;
  const resolved = await ctx.jail.resolve(entry);
  return resolved.ok ? await fileLines(ctx.jail, resolved.value) : 0;
}

/** The move itself: never over an existing name unless asked, falling back where hard links fail. */
async function moveEntry(
  source: string,
  destination: string,
  options: { overwrite: boolean; fromShown: string; toShown: string; info: Stats },
): Promise<Outcome<{ source: string; destination: string; replaced: boolean }>> {
  const { fromShown, toShown, info } = options;
  const existed = (await lstat(destination).catch(() => undefined)) !== undefined;
  try {
    if (!options.overwrite && !info.isDirectory()) {
      // link(2) refuses an existing name, so a destination created meanwhile is never clobbered.
      await link(source, destination);
      await unlink(source);
    } else {
      await rename(source, destination);
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !(await lstat(path.dirname(destination)).catch(() => undefined))) {
      return fail('NOT_FOUND', `the parent directory of '${toShown}' does not exist`, {
        hint: 'Create it with create_directory first.',
      });
    }
    if (code === 'EPERM' && !info.isDirectory()) {
      // Some filesystems refuse hard links; fall back to a checked rename.
      if (await lstat(destination).catch(() => undefined))
        return fail('ALREADY_EXISTS', `destination '${toShown}' already exists`, {
          hint: 'Pass overwrite: true to replace it.',
        });
      await rename(source, destination);
      return ok({ source: fromShown, destination: toShown, replaced: false });
    }
    if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'EISDIR' || code === 'ENOTDIR') {
      return fail(
        'CONFLICT',
        `cannot move '${fromShown}' onto '${toShown}': ${code === 'ENOTEMPTY' || code === 'EEXIST' ? 'the destination is a directory that is not empty' : 'a file and a directory cannot replace each other'}`,
        {
          hint: 'Delete the destination first (delete with recursive: true), or pick another destination.',
        },
      );
    }
    return fsError(error, toShown, 'move to');
  }
  return ok({ source: fromShown, destination: toShown, replaced: existed });
}
