import { budgetArg, defineTool, fail, ok, toolError, truncationSchema, type AnyTool } from '@keel/kit';
import * as z from 'zod';
import { checkResolved, type FsDeps } from '../fs/access.js';
import { atomicWrite, isUtf8Text, looksBinary, readWhole, sha256Of } from '../fs/files.js';
import { unifiedDiff } from '../fs/diff.js';
import { applyEdits, undoEdits } from '../fs/edits.js';
import { lineDelta } from '../fs/lines.js';

/** `edit_file`: exact-text replacements applied together, atomically, with a diff back. */
export function editFileTool(deps: FsDeps): AnyTool {
  return defineTool({
    name: 'edit_file',
    title: 'Edit a file',
    description:
      "Applies exact-text replacements to a file in order, then writes it atomically. Each oldText must occur exactly once unless replaceAll is true; otherwise nothing is written and the error gives the matches' lines (add surrounding lines to make oldText unique). In a CRLF file, LF in oldText/newText means CRLF.",
    input: z.object({
      path: z.string().describe('File to edit, relative to the first root or absolute inside a root.'),
      edits: z
        .array(
          z.object({
            oldText: z.string().min(1).describe('Exact text to replace (whitespace included).'),
            newText: z.string().describe('Replacement text.'),
            replaceAll: z
              .boolean()
              .default(false)
              .describe('Replace every occurrence instead of requiring exactly one.'),
          }),
        )
        .min(1)
        .max(100)
        .describe('Replacements, applied in order, each to the result of the previous.'),
      expectedSha256: z
        .string()
        .regex(/^[0-9a-f]{64}$/)
        .optional()
        .describe('Edit only if the file has this SHA-256 (from read_file).'),
      dryRun: z.boolean().default(false).describe('Return the diff without writing.'),
      maxDiffBytes: budgetArg({ default: 32_768, max: 1_048_576, unit: 'bytes', what: 'diff' }),
    }),
    output: z.object({
      path: z.string(),
      diff: z.string().describe('Unified diff of the change.'),
      replacements: z.number().describe('Occurrences replaced across all edits.'),
      previousSha256: z.string(),
      sha256: z
        .string()
        .describe('SHA-256 of the new content (written, or that would be written on dryRun).'),
      dryRun: z.boolean(),
      truncated: truncationSchema.optional(),
    }),
    effect: 'write',
    paths: { path: 'existing' },
    render: (out) =>
      `${out.dryRun ? 'would edit' : 'edited'} ${out.path}: ${out.replacements} replacement(s), sha256 ${out.sha256}\n${out.diff}`,
    plan: async (input, ctx) => {
      const checked = checkResolved(ctx, deps, ctx.paths.path, 'write');
      if (!checked.ok) return checked;
      const { resolved, shown } = checked.value;
      const current = await readWhole(ctx.jail, resolved, shown);
      if (!current.ok) return current;
      if (!isUtf8Text(current.value)) {
        return fail(
          'INVALID_ARGUMENT',
          `'${shown}' ${looksBinary(current.value) ? 'is a binary file' : 'is not UTF-8 text'}`,
          {
            hint: 'edit_file edits UTF-8 text (it would rewrite other bytes as replacement characters); use write_file with base64.',
          },
        );
      }
      const previousSha256 = sha256Of(current.value);
      if (input.expectedSha256 !== undefined && input.expectedSha256 !== previousSha256) {
        return fail(
          'PRECONDITION_FAILED',
          `file '${shown}' changed: its sha256 is ${previousSha256}, not the expected ${input.expectedSha256}`,
          {
            hint: 'Read the file again and redo the edit against its current content.',
            details: { actualSha256: previousSha256 },
          },
        );
      }
      const before = current.value.toString('utf8');
      const applied = applyEdits(before, input.edits, shown);
      if (!applied.ok) return applied;
      const { text, replacements } = applied.value;
      const data = Buffer.from(text, 'utf8');
      const writes = !input.dryRun && text !== before;
      return ok({
        effect: async () => ({
          files: writes
            ? [{ path: resolved.real, change: 'modify' as const, ...(await lineDelta(current.value, data)) }]
            : [],
        }),
        apply: async () => {
          const { diff, truncated } = await unifiedDiff(shown, before, text, input.maxDiffBytes);
          if (writes) {
            const written = await atomicWrite(ctx.jail, resolved, data, shown, { mode: 'overwrite' });
            if (!written.ok) return written;
          }
          return ok({
            path: shown,
            diff,
            replacements,
            previousSha256,
            sha256: sha256Of(data),
            dryRun: input.dryRun,
            ...(truncated === undefined ? {} : { truncated }),
          });
        },
      });
    },
    // After a crash the file shows whether the edits landed: their undo must redo to the content now.
    reconcile: async (input, ctx) => {
      if (input.dryRun) return { status: 'not_done' };
      const checked = checkResolved(ctx, deps, ctx.paths.path, 'write');
      if (!checked.ok) return { status: 'failed', error: checked.error };
      const { resolved, shown } = checked.value;
      const read = await readWhole(ctx.jail, resolved, shown);
      if (!read.ok) return { status: 'failed', error: read.error };
      const current = read.value.toString('utf8');
      if (input.expectedSha256 !== undefined && sha256Of(read.value) === input.expectedSha256)
        return { status: 'not_done' };
      const original = undoEdits(current, input.edits);
      const originalSha256 = original === undefined ? undefined : sha256Of(Buffer.from(original, 'utf8'));
      if (
        original !== undefined &&
        (input.expectedSha256 === undefined || originalSha256 === input.expectedSha256)
      ) {
        const redone = applyEdits(original, input.edits, shown);
        if (!redone.ok) return { status: 'failed', error: redone.error };
        const { diff, truncated } = await unifiedDiff(shown, original, current, input.maxDiffBytes);
        return {
          status: 'done',
          value: {
            path: shown,
            diff,
            replacements: redone.value.replacements,
            previousSha256: originalSha256!,
            sha256: sha256Of(read.value),
            dryRun: false,
            ...(truncated === undefined ? {} : { truncated }),
          },
        };
      }
      // An insertion cannot be undone by text alone, but its pre-image's hash tells: the one place
      // it could have gone in whose undo hashes to expectedSha256 (and redoes to the file) is proof.
      const before =
        input.expectedSha256 === undefined
          ? undefined
          : insertedAt(current, input.edits, input.expectedSha256);
      if (before !== undefined) {
        const { diff, truncated } = await unifiedDiff(shown, before, current, input.maxDiffBytes);
        return {
          status: 'done',
          value: {
            path: shown,
            diff,
            replacements: 1,
            previousSha256: input.expectedSha256!,
            sha256: sha256Of(read.value),
            dryRun: false,
            ...(truncated === undefined ? {} : { truncated }),
          },
        };
      }
      // With its pre-image's hash, a file that differs is refused by the handler's own check.
      if (input.expectedSha256 !== undefined) return { status: 'not_done' };
      // An edit whose new text holds its old text (an insertion) still applies once it landed: the
      // file cannot say whether it did, and running it again would insert twice.
      if (input.edits.some((edit) => edit.newText.includes(edit.oldText)))
        return {
          status: 'failed',
          error: toolError(
            'CONFLICT',
            `an interrupted edit_file of '${shown}' cannot be confirmed: its new text contains its old text, so the file accepts the edit whether or not it landed`,
            {
              hint: 'Read the file; if the edit is not there, redo it with a new idempotency key (pass expectedSha256 from read_file, so an interrupted edit can be told apart).',
            },
          ),
        };
      // Not applied yet (or changed by someone else, which the handler's own checks report).
      if (applyEdits(current, input.edits, shown).ok) return { status: 'not_done' };
      return {
        status: 'failed',
        error: toolError(
          'CONFLICT',
          `an interrupted edit_file of '${shown}' cannot be confirmed: the file neither shows the edits nor accepts them`,
          {
            hint: 'Read the file, then redo the edit against its current content with a new idempotency key.',
          },
        ),
      };
    },
  });
}

/**
 * The content before a single insertion (one edit whose new text holds its old text) that left
 * `current`: of the places its new text occurs, the one whose undo hashes to `sha256` and redoes to
 * `current`. Undefined for any other edit, or when no place fits.
 */
function insertedAt(
  current: string,
  edits: ReadonlyArray<{ oldText: string; newText: string; replaceAll: boolean }>,
  sha256: string,
): string | undefined {
  const [edit] = edits;
  if (edits.length !== 1 || edit === undefined || edit.replaceAll || !edit.newText.includes(edit.oldText))
    return undefined;
  for (let at = current.indexOf(edit.newText); at !== -1; at = current.indexOf(edit.newText, at + 1)) {
    const before = current.slice(0, at) + edit.oldText + current.slice(at + edit.newText.length);
    if (sha256Of(Buffer.from(before, 'utf8')) !== sha256) continue;
    const redone = applyEdits(before, edits, '');
    if (redone.ok && redone.value.text === current) return before;
  }
  return undefined;
}
