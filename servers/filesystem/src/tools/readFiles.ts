import { budgetArg, defineTool, ok, type AnyTool } from '@keel/kit';
import * as z from 'zod';
import { checkResolved, type FsDeps } from '../fs/access.js';
import { isUtf8 } from 'node:buffer';
import { isUtf8Text, openForRead } from '../fs/files.js';
import { readWindow, wholeFileLimit } from '../fs/window.js';

const fileResult = z.object({
  path: z.string(),
  ok: z.boolean().describe('False when this file could not be read; see error.'),
  content: z.string().optional().describe('UTF-8 text (absent for binary files and errors).'),
  size: z.number().optional(),
  binary: z.boolean().optional(),
  totalLines: z.number().optional(),
  sha256: z.string().optional(),
  truncated: z
    .object({
      limit: z.number().describe('Bytes of this file returned.'),
      unit: z.literal('bytes'),
      total: z.number().describe('File size in bytes.'),
      continueAtByte: z.number().describe('Pass as byteOffset to read_file to read on.'),
    })
    .optional()
    .describe('Present when this file was cut to its share of the budget.'),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
});

/** `read_files`: several files in one call under one byte budget shared between them. */
export function readFilesTool(deps: FsDeps): AnyTool {
  return defineTool({
    name: 'read_files',
    title: 'Read several files',
    description:
      'Reads up to 50 text files in one call under one total byte budget, split fairly: small files leave their unused share to the others. A file that cannot be read gets ok: false with its error; the others are still returned. For a cut file, continue with read_file at truncated.continueAtByte.',
    input: z.object({
      paths: z
        .array(z.string())
        .min(1)
        .max(50)
        .describe('Files to read, relative to the first root or absolute inside a root.'),
      maxBytes: budgetArg({
        default: 131_072,
        max: 1_048_576,
        unit: 'bytes',
        what: 'content across all files',
      }),
    }),
    output: z.object({
      files: z.array(fileResult),
      totalBytes: z.number().describe('Content bytes returned.'),
    }),
    effect: 'read',
    paths: { paths: 'any' },
    render: (out) =>
      out.files
        .map((file) =>
          file.ok
            ? `==> ${file.path}${file.binary === true ? ' (binary, not shown)' : ''}${file.truncated === undefined ? '' : ` (cut; continue at byte ${file.truncated.continueAtByte})`} <==\n${file.content ?? ''}`
            : `==> ${file.path} <==\nError [${file.error?.code}]: ${file.error?.message}`,
        )
        .join('\n'),
    handler: async (input, ctx) => {
      const resolved = ctx.paths.paths ?? [];
      const files: z.output<typeof fileResult>[] = [];
      let remaining = input.maxBytes;
      let totalBytes = 0;
      for (let i = 0; i < resolved.length; i++) {
        const target = resolved[i]!;
        const shown = ctx.jail.display(target.real);
        const failed = (code: string, message: string) =>
          files.push({ path: shown, ok: false, error: { code, message } });
        const checked = checkResolved(ctx, deps, target, 'read');
        if (!checked.ok) {
          failed(checked.error.code, checked.error.message);
          continue;
        }
        if (!target.exists) {
          failed('NOT_FOUND', `file '${shown}' does not exist`);
          continue;
        }
        const share = Math.floor(remaining / (resolved.length - i));
        const opened = await openForRead(ctx.jail, target, shown);
        if (!opened.ok) {
          failed(opened.error.code, opened.error.message);
          continue;
        }
        try {
          const info = await opened.value.stat();
          if (info.isDirectory()) {
            failed('INVALID_ARGUMENT', `'${shown}' is a directory`);
            continue;
          }
          if (!info.isFile()) {
            failed('INVALID_ARGUMENT', `'${shown}' is not a regular file`);
            continue;
          }
          const head = Buffer.alloc(Math.min(8192, info.size));
          if (head.length > 0) await opened.value.read(head, 0, head.length, 0);
          // Not UTF-8 text (a NUL, or bytes that would decode to replacement characters): no content.
          if (!isUtf8Text(head, head.length < info.size)) {
            files.push({ path: shown, ok: true, size: info.size, binary: true });
            continue;
          }
          const window = await readWindow(opened.value, info.size, {
            maxBytes: Math.max(1, share),
            totals: info.size <= wholeFileLimit,
            raw: false,
          });
          if (!isUtf8(window.bytes)) {
            files.push({ path: shown, ok: true, size: info.size, binary: true });
            continue;
          }
          const content = share === 0 ? '' : window.bytes.toString('utf8');
          const used = share === 0 ? 0 : window.bytes.length;
          remaining -= used;
          totalBytes += used;
          files.push({
            path: shown,
            ok: true,
            content,
            size: info.size,
            binary: false,
            ...(window.totalLines === undefined ? {} : { totalLines: window.totalLines }),
            ...(window.sha256 === undefined ? {} : { sha256: window.sha256 }),
            ...(window.more || (share === 0 && info.size > 0)
              ? { truncated: { limit: used, unit: 'bytes' as const, total: info.size, continueAtByte: used } }
              : {}),
          });
        } catch (error) {
          failed('INTERNAL', `cannot read '${shown}': ${(error as Error).message}`);
        } finally {
          await opened.value.close();
        }
      }
      return ok({ files, totalBytes });
    },
  });
}
