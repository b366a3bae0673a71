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
import * as z from 'zod';
import { checkResolved, type FsDeps } from '../fs/access.js';
import { isUtf8 } from 'node:buffer';
import { closeSync, fstatSync } from 'node:fs';
import { asyncReader, fsError, isUtf8Text, openSyncChecked, syncReader } from '../fs/files.js';
import { readWindow, wholeFileLimit } from '../fs/window.js';

interface ReadCursor {
  o: number;
  l: number | null;
  m: number;
  s: number;
}

const common = {
  path: z.string().describe('File to read, relative to the first root or absolute inside a root.'),
  maxBytes: budgetArg({ default: 65_536, max: 1_048_576, unit: 'bytes', what: 'file content' }),
  binary: z
    .enum(['metadata', 'base64'])
    .default('metadata')
    .describe(
      'For a binary file (a NUL byte, or bytes that are not UTF-8): only its metadata (default), or its bytes, exact, as base64 within maxBytes.',
    ),
  totals: z
    .enum(['auto', 'always'])
    .default('auto')
    .describe(
      '"auto": sha256 and totalLines for files up to 8 MiB; "always": also for larger files (reads the whole file).',
    ),
  cursor: cursorArg,
};

/** `read_file`: one bounded window of a file, by lines or bytes, with a cursor to continue. */
export function readFileTool(deps: FsDeps): AnyTool {
  return defineTool({
    name: 'read_file',
    title: 'Read a file',
    description:
      'Reads a text file: a window of lines, its last lines or from a byte offset, at most maxBytes; a cut result has truncated.nextCursor. Returns sha256 (the expectedSha256 of write_file/edit_file) and totalLines. A binary file gives its metadata only, unless binary is "base64".',
    // The modes exclude each other; as alternatives in the schema the model is told, not only refused.
    input: z.xor([
      z
        .strictObject({
          ...common,
          startLine: z.number().int().positive().optional().describe('First line to return (1-based).'),
          endLine: z
            .number()
            .int()
            .positive()
            .optional()
            .describe('Last line to return (1-based, inclusive).'),
        })
        .describe('By lines: startLine/endLine (default: from the first line).'),
      z
        .strictObject({
          ...common,
          byteOffset: z.number().int().min(0).describe('First byte to return (0-based).'),
        })
        .describe('By bytes: from byteOffset.'),
      z
        .strictObject({
          ...common,
          tailLines: z
            .number()
            .int()
            .positive()
            .max(100_000)
            .describe('Return the last N lines (read from the end; for logs).'),
        })
        .describe('The end of the file: its last tailLines lines.'),
    ]),
    output: z.object({
      path: z.string(),
      size: z.number().describe('File size in bytes.'),
      mtime: z.string().describe('Last modification time (ISO 8601).'),
      binary: z.boolean(),
      encoding: z
        .enum(['utf8', 'base64', 'none'])
        .describe('How `content` is encoded; "none" when no content was returned.'),
      content: z.string(),
      startByte: z.number(),
      endByte: z.number().describe('Byte just after the returned content.'),
      startLine: z.number().optional().describe('Line number of the first returned line, when known.'),
      endLine: z.number().optional().describe('Line number of the last returned line, when known.'),
      totalLines: z.number().optional(),
      sha256: z.string().optional().describe('SHA-256 of the whole file.'),
      truncated: truncationSchema.optional(),
    }),
    effect: 'read',
    paths: { path: 'existing' },
    cursorIgnores: ['maxBytes', 'totals'],
    render: (out) => {
      if (out.binary && out.encoding === 'none')
        return `${out.path}: binary file, ${out.size} bytes (pass binary: "base64" for its bytes)`;
      const note =
        out.truncated === undefined
          ? ''
          : `\n[cut at ${out.truncated.limit} bytes after line ${out.endLine ?? '?'}${out.totalLines === undefined ? '' : ` of ${out.totalLines}`}; pass cursor "${out.truncated.nextCursor}" to continue]`;
      return `${out.content}${note}`;
    },
    handler: async (input, ctx) => {
      const startLine = 'startLine' in input ? input.startLine : undefined;
      const endLine = 'endLine' in input ? input.endLine : undefined;
      const byteOffset = 'byteOffset' in input ? input.byteOffset : undefined;
      const tailLines = 'tailLines' in input ? input.tailLines : undefined;
      if (startLine !== undefined && endLine !== undefined && endLine < startLine) {
        return fail('INVALID_ARGUMENT', `endLine ${endLine} is before startLine ${startLine}`, {
          hint: 'Pass endLine >= startLine.',
        });
      }
      const checked = checkResolved(ctx, deps, ctx.paths.path, 'read');
      if (!checked.ok) return checked;
      const { resolved, shown } = checked.value;
      const decoded = ctx.decodeCursor(input.cursor);
      if (!decoded.ok) return decoded;
      const state = decoded.value as ReadCursor | undefined;

      const opened = openSyncChecked(ctx.jail, resolved.real);
      if ('refused' in opened) return { ok: false, error: opened.refused };
      if ('error' in opened) return fsError(opened.error, shown, 'read');
      const fd = opened.fd;
      try {
        const info = fstatSync(fd);
        // Window reads run synchronously (microseconds for a local file); a whole-file hash of a large
        // file goes through the thread pool so it cannot stall the server.
        const handle =
          input.totals === 'always' && info.size > wholeFileLimit ? asyncReader(fd) : syncReader(fd);
        if (info.isDirectory()) {
          return fail('INVALID_ARGUMENT', `'${shown}' is a directory`, {
            hint: 'Use list_directory or tree for directories.',
          });
        }
        if (!info.isFile()) {
          return fail('INVALID_ARGUMENT', `'${shown}' is not a regular file`, {
            hint: 'Read regular files; stat shows what a path is.',
          });
        }
        if (state !== undefined && (state.m !== info.mtimeMs || state.s !== info.size)) {
          return fail('CONFLICT', `file '${shown}' changed since the cursor was issued`, {
            hint: 'Read it again from the start (drop the cursor).',
          });
        }
        const base = { path: shown, size: info.size, mtime: info.mtime.toISOString() };
        const request = {
          byteOffset,
          maxBytes: input.maxBytes,
          resumeAt: state === undefined ? undefined : { byte: state.o, line: state.l ?? undefined },
          totals: input.totals === 'always' || info.size <= wholeFileLimit,
        };
        const fromStart =
          state === undefined && tailLines === undefined && (startLine ?? 1) === 1 && (byteOffset ?? 0) === 0;
        // A window from the start already holds the bytes that tell text from binary; otherwise read them.
        let window = fromStart
          ? await readWindow(handle, info.size, {
              ...request,
              startLine,
              endLine,
              raw: false,
            })
          : undefined;
        let head = window?.bytes;
        if (window === undefined || (window.bytes.length < 8192 && window.endByte < info.size)) {
          head = Buffer.alloc(Math.min(8192, info.size));
          if (head.length > 0) await handle.read(head, 0, head.length, 0);
        }
        // Bytes that are not UTF-8 text are binary, NUL or not: decoded, they would lose bytes.
        let binary = !isUtf8Text(head!, head!.length < info.size);
        const metadataOnly = () =>
          ok({ ...base, binary: true, encoding: 'none' as const, content: '', startByte: 0, endByte: 0 });
        if (binary && input.binary === 'metadata') return metadataOnly();
        if (binary || window === undefined) {
          window = await readWindow(handle, info.size, {
            ...request,
            ...(binary ? {} : { startLine, endLine, tailLines }),
            raw: binary,
          });
        }
        // A text window past the first 8 KiB can still hold bytes that are not UTF-8: binary after all,
        // so the same bytes come back exact (base64), or as metadata.
        if (!binary && !window.pastEnd && !isUtf8(window.bytes)) {
          if (input.binary === 'metadata') return metadataOnly();
          binary = true;
          window = await readWindow(handle, info.size, {
            ...request,
            byteOffset: window.startByte,
            resumeAt: undefined,
            raw: true,
          });
        }
        if (window.pastEnd) {
          return fail(
            'INVALID_ARGUMENT',
            `startLine ${startLine} is past the end of '${shown}'${window.totalLines === undefined ? '' : ` (${window.totalLines} lines)`}`,
            {
              hint: 'Pass a startLine within the file; read without startLine to see its length.',
              details: window.totalLines === undefined ? {} : { totalLines: window.totalLines },
            },
          );
        }
        let truncated: Truncation | undefined;
        if (window.more) {
          const next: ReadCursor = {
            o: window.endByte,
            l: window.nextLine ?? null,
            m: info.mtimeMs,
            s: info.size,
          };
          truncated = {
            limit: input.maxBytes,
            unit: 'bytes',
            total: info.size,
            nextCursor: ctx.encodeCursor(next),
          };
        }
        const lastLine =
          window.startLine === undefined || window.bytes.length === 0
            ? undefined
            : window.nextLine! - (window.bytes[window.bytes.length - 1] === 0x0a ? 1 : 0);
        return ok({
          ...base,
          binary,
          encoding: binary ? ('base64' as const) : ('utf8' as const),
          content: binary ? window.bytes.toString('base64') : window.bytes.toString('utf8'),
          startByte: window.startByte,
          endByte: window.endByte,
          ...(binary || window.startLine === undefined ? {} : { startLine: window.startLine }),
          ...(binary || lastLine === undefined ? {} : { endLine: lastLine }),
          ...(window.totalLines === undefined || binary ? {} : { totalLines: window.totalLines }),
          ...(window.sha256 === undefined ? {} : { sha256: window.sha256 }),
          ...(truncated === undefined ? {} : { truncated }),
        });
      } catch (error) {
        return fsError(error, shown, 'read');
      } finally {
        closeSync(fd);
      }
    },
  });
}
