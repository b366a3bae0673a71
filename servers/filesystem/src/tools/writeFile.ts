import { countLines, defineTool, fail, ok, type AnyTool } from '@keel/kit';
import * as z from 'zod';
import { checkResolved, type FsDeps } from '../fs/access.js';
import type { Outcome, PathJail, ResolvedPath } from '@keel/kit';
import {
  atomicWrite,
  ensureParents,
  fsError,
  looksBinary,
  openForRead,
  parentExists,
  readWhole,
  sha256Of,
} from '../fs/files.js';
import { fileLines, lineDelta } from '../fs/lines.js';
import { readWindow } from '../fs/window.js';

/** The sha256 of a file as it is now, streamed (the file may be larger than anything worth loading). */
async function currentSha256(
  jail: PathJail,
  resolved: ResolvedPath,
  shown: string,
): Promise<Outcome<string>> {
  const opened = await openForRead(jail, resolved, shown);
  if (!opened.ok) return opened;
  try {
    const info = await opened.value.stat();
    const window = await readWindow(opened.value, info.size, { maxBytes: 1, totals: true, raw: true });
    return ok(window.sha256!);
  } catch (error) {
    return fsError(error, shown, 'read');
  } finally {
    await opened.value.close();
  }
}

/** `write_file`: writes a whole file atomically, with create-only mode and a sha256 precondition. */
export function writeFileTool(deps: FsDeps): AnyTool {
  return defineTool({
    name: 'write_file',
    title: 'Write a file',
    description:
      'Writes the whole content of a file atomically: readers and crashes see the old or the new content, never a mix. With expectedSha256 it overwrites only a file that still has that hash, so a concurrent change is not lost. Returns the new sha256.',
    input: z.object({
      path: z.string().describe('File to write, relative to the first root or absolute inside a root.'),
      content: z.string().max(16_777_216).describe('The full new content.'),
      encoding: z
        .enum(['utf8', 'base64'])
        .default('utf8')
        .describe('How content is encoded; base64 for binary data.'),
      mode: z
        .enum(['create', 'overwrite'])
        .default('overwrite')
        .describe('"create": only if the file does not exist; "overwrite": replace it.'),
      expectedSha256: z
        .string()
        .regex(/^[0-9a-f]{64}$/)
        .optional()
        .describe('Overwrite only if the current file has this SHA-256 (hex, from read_file).'),
      createParents: z.boolean().default(false).describe('Create missing parent directories.'),
    }),
    output: z.object({
      path: z.string(),
      bytes: z.number(),
      sha256: z.string().describe('SHA-256 of the new content.'),
      created: z.boolean().describe('Whether the file did not exist before.'),
    }),
    effect: 'write',
    idempotent: true,
    paths: { path: 'any' },
    render: (out) =>
      `${out.created ? 'created' : 'wrote'} ${out.path} (${out.bytes} bytes, sha256 ${out.sha256})`,
    plan: async (input, ctx) => {
      const checked = checkResolved(ctx, deps, ctx.paths.path, 'write');
      if (!checked.ok) return checked;
      const { resolved, shown } = checked.value;
      const data = Buffer.from(input.content, input.encoding);
      let current: string | undefined;
      if (input.expectedSha256 !== undefined) {
        if (input.mode === 'create') {
          return fail('INVALID_ARGUMENT', 'expectedSha256 cannot be used with mode "create"', {
            hint: 'expectedSha256 guards an overwrite; drop it, or use mode "overwrite".',
          });
        }
        const now = await currentSha256(ctx.jail, resolved, shown);
        if (!now.ok) {
          if (now.error.code === 'NOT_FOUND') {
            return fail(
              'PRECONDITION_FAILED',
              `file '${shown}' does not exist, so it cannot have the expected sha256`,
              {
                hint: 'Drop expectedSha256 to create it, or check the path.',
              },
            );
          }
          return now;
        }
        current = now.value;
        if (current !== input.expectedSha256) {
          return fail(
            'PRECONDITION_FAILED',
            `file '${shown}' changed: its sha256 is ${current}, not the expected ${input.expectedSha256}`,
            {
              hint: 'Read the file again, re-apply your change to the current content, and pass the new sha256.',
              details: { actualSha256: current },
            },
          );
        }
      }
      const missingParent = !(await parentExists(resolved.real));
      if (missingParent && !input.createParents) {
        return fail('NOT_FOUND', `the parent directory of '${shown}' does not exist`, {
          hint: 'Pass createParents: true, or create it with create_directory.',
        });
      }
      if (resolved.exists && input.mode === 'create') {
        return fail('ALREADY_EXISTS', `file '${shown}' already exists`, {
          hint: "Pass mode: 'overwrite' (with expectedSha256 to guard against lost updates), or pick another path.",
        });
      }
      const sha256 = sha256Of(data);
      return ok({
        effect: async () => {
          if (!resolved.exists)
            return {
              files: [
                { path: resolved.real, change: 'create' as const, ...(await lineDelta(undefined, data)) },
              ],
            };
          let now = current;
          if (now === undefined) {
            const read = await currentSha256(ctx.jail, resolved, shown);
            if (read.ok) now = read.value;
          }
          // The same bytes again: the file is rewritten, not changed.
          if (now === sha256) return { files: [] };
          const before = await readWhole(ctx.jail, resolved, shown);
          // Too large to diff: every line counts as changed, the bound rather than less than the truth.
          const delta = before.ok
            ? await lineDelta(before.value, data)
            : {
                linesAdded: countLines(data),
                linesRemoved: await fileLines(ctx.jail, resolved),
                binary: looksBinary(data),
              };
          return { files: [{ path: resolved.real, change: 'modify' as const, ...delta }] };
        },
        apply: async () => {
          if (missingParent) {
            const made = await ensureParents(ctx.jail, resolved, shown);
            if (!made.ok) return made;
          }
          const written = await atomicWrite(ctx.jail, resolved, data, shown, { mode: input.mode });
          if (!written.ok) return written;
          return ok({ path: shown, bytes: data.length, sha256, created: written.value.created });
        },
      });
    },
  });
}
