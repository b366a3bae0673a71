import { budgetArg, defineTool, fail, ok, truncationSchema, type AnyTool } from '@keel/kit';
import * as z from 'zod';
import { checkedPath, type FsDeps } from '../fs/access.js';
import { atomicWrite, looksBinary, readWhole, sha256Of } from '../fs/files.js';
import { unifiedDiff } from '../fs/diff.js';

function lineOf(text: string, index: number): number {
  let line = 1;
  let at = text.indexOf('\n');
  while (at !== -1 && at < index) {
    line++;
    at = text.indexOf('\n', at + 1);
  }
  return line;
}

function occurrences(text: string, needle: string): number[] {
  const found: number[] = [];
  let at = text.indexOf(needle);
  while (at !== -1) {
    found.push(at);
    at = text.indexOf(needle, at + needle.length);
  }
  return found;
}

/** `edit_file`: exact-text replacements applied together, atomically, with a diff back. */
export function editFileTool(deps: FsDeps): AnyTool {
  return defineTool({
    name: 'edit_file',
    title: 'Edit a file',
    description:
      'Applies a list of exact-text replacements to a file, in order, then writes it atomically. Each oldText must occur exactly once unless replaceAll is true; otherwise nothing is written and the error says how many matches there are and on which lines (add surrounding lines to oldText to make it unique). If the file uses CRLF line ends, LF in oldText/newText is matched and written as CRLF. dryRun returns the diff without writing. expectedSha256 refuses the edit if the file changed since you read it.',
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
    handler: async (input, ctx) => {
      const checked = checkedPath(ctx, deps, 'path', 'write');
      if (!checked.ok) return checked;
      const { resolved, shown } = checked.value;
      const current = await readWhole(ctx.jail, resolved, shown);
      if (!current.ok) return current;
      if (looksBinary(current.value)) {
        return fail('INVALID_ARGUMENT', `'${shown}' is a binary file`, {
          hint: 'edit_file edits text; use write_file with base64 for binary content.',
        });
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
      const crlf = before.includes('\r\n');
      let text = before;
      let replacements = 0;
      for (const [i, edit] of input.edits.entries()) {
        let oldText = edit.oldText;
        let newText = edit.newText;
        let found = occurrences(text, oldText);
        if (found.length === 0 && crlf && !oldText.includes('\r\n')) {
          oldText = oldText.replaceAll('\n', '\r\n');
          newText = newText.replace(/\r?\n/g, '\r\n');
          found = occurrences(text, oldText);
        }
        const preview = JSON.stringify(
          edit.oldText.length > 80 ? `${edit.oldText.slice(0, 80)}…` : edit.oldText,
        );
        if (found.length === 0) {
          return fail(
            'NOT_FOUND',
            `edit ${i + 1}: oldText ${preview} does not occur in '${shown}'${i > 0 ? ' (after the earlier edits)' : ''}`,
            {
              hint: 'Read the file again and copy the exact text, whitespace and indentation included.',
              details: { edit: i + 1 },
            },
          );
        }
        if (found.length > 1 && !edit.replaceAll) {
          const lines = found.slice(0, 20).map((at) => lineOf(text, at));
          return fail(
            'CONFLICT',
            `edit ${i + 1}: oldText ${preview} occurs ${found.length} times in '${shown}', on lines ${lines.join(', ')}${found.length > 20 ? ', …' : ''}`,
            {
              hint: 'Include surrounding lines in oldText so it matches once, or pass replaceAll: true to replace every occurrence.',
              details: { edit: i + 1, matches: found.length, lines },
            },
          );
        }
        text = text.split(oldText).join(newText);
        replacements += found.length;
      }
      const data = Buffer.from(text, 'utf8');
      const sha256 = sha256Of(data);
      const { diff, truncated } = await unifiedDiff(shown, before, text, input.maxDiffBytes);
      if (!input.dryRun && text !== before) {
        const written = await atomicWrite(ctx.jail, resolved, data, shown, { mode: 'overwrite' });
        if (!written.ok) return written;
      }
      return ok({
        path: shown,
        diff,
        replacements,
        previousSha256,
        sha256,
        dryRun: input.dryRun,
        ...(truncated === undefined ? {} : { truncated }),
      });
    },
  });
}
