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
import { closeSync, fstatSync } from 'node:fs';
import { asyncReader, fsError, looksBinary, openSyncChecked, syncReader } from '../fs/files.js';
import { readWindow, wholeFileLimit } from '../fs/window.js';

interface ReadCursor {
  o: number;
  l: number | null;
  m: number;
  s: number;
}

/** `read_file`: one bounded window of a file, by lines or bytes, with a cursor to continue. */
export function readFileTool(deps: FsDeps): AnyTool {
  return defineTool({
    name: 'read_file',
    title: 'Read a file',
    description:
      'Reads a window of a text file by lines (startLine/endLine, 1-based, inclusive), its last lines (tailLines) or bytes (byteOffset), at most maxBytes; a cut result has truncated.nextCursor to continue. Returns sha256 and totalLines (for files up to 8 MiB, or when totals is "always") for use as the expectedSha256 of write_file/edit_file. Binary files report metadata only, unless binary is "base64".',
    input: z.object({
      path: z.string().describe('File to read, relative to the first root or absolute inside a root.'),
      startLine: z
        .number()
        .int()
        .positive()
        .optional()
        .describe('First line to return (1-based). Not with byteOffset.'),
      endLine: z
        .number()
        .int()
        .positive()
        .optional()
        .describe('Last line to return (1-based, inclusive). Not with byteOffset.'),
      byteOffset: z
        .number()
        .int()
        .min(0)
        .optional()
        .describe('First byte to return (0-based). Not with startLine/endLine.'),
      tailLines: z
        .number()
        .int()
        .positive()
        .max(100_000)
        .optional()
        .describe(
          'Return the last N lines (read from the end; for logs). Not with startLine/endLine/byteOffset.',
        ),
      maxBytes: budgetArg({ default: 65_536, max: 1_048_576, unit: 'bytes', what: 'file content' }),
      binary: z
        .enum(['metadata', 'base64'])
        .default('metadata')
        .describe('For a binary file: only its metadata (default), or its bytes as base64 within maxBytes.'),
      totals: z
        .enum(['auto', 'always'])
        .default('auto')
        .describe(
          '"auto": sha256 and totalLines for files up to 8 MiB; "always": also for larger files (reads the whole file).',
        ),
      cursor: cursorArg,
    }),
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
      if (
        input.tailLines !== undefined &&
        (input.byteOffset !== undefined || input.startLine !== undefined || input.endLine !== undefined)
      ) {
        return fail('INVALID_ARGUMENT', 'tailLines cannot be combined with startLine/endLine/byteOffset', {
          hint: 'Pass tailLines alone to read the end of the file.',
        });
      }
      if (input.byteOffset !== undefined && (input.startLine !== undefined || input.endLine !== undefined)) {
        return fail('INVALID_ARGUMENT', 'byteOffset cannot be combined with startLine/endLine', {
          hint: 'Read by lines (startLine/endLine) or by bytes (byteOffset), not both.',
        });
      }
      if (input.startLine !== undefined && input.endLine !== undefined && input.endLine < input.startLine) {
        return fail('INVALID_ARGUMENT', `endLine ${input.endLine} is before startLine ${input.startLine}`, {
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
          byteOffset: input.byteOffset,
          maxBytes: input.maxBytes,
          resumeAt: state === undefined ? undefined : { byte: state.o, line: state.l ?? undefined },
          totals: input.totals === 'always' || info.size <= wholeFileLimit,
        };
        const fromStart =
          state === undefined &&
          input.tailLines === undefined &&
          (input.startLine ?? 1) === 1 &&
          (input.byteOffset ?? 0) === 0;
        // A window from the start already holds the bytes that tell text from binary; otherwise read them.
        let window = fromStart
          ? await readWindow(handle, info.size, {
              ...request,
              startLine: input.startLine,
              endLine: input.endLine,
              raw: false,
            })
          : undefined;
        let head = window?.bytes;
        if (window === undefined || (window.bytes.length < 8192 && window.endByte < info.size)) {
          head = Buffer.alloc(Math.min(8192, info.size));
          if (head.length > 0) await handle.read(head, 0, head.length, 0);
        }
        const binary = looksBinary(head!);
        if (binary && input.binary === 'metadata') {
          return ok({ ...base, binary, encoding: 'none' as const, content: '', startByte: 0, endByte: 0 });
        }
        if (binary || window === undefined) {
          window = await readWindow(handle, info.size, {
            ...request,
            ...(binary
              ? {}
              : { startLine: input.startLine, endLine: input.endLine, tailLines: input.tailLines }),
            raw: binary,
          });
        }
        if (window.pastEnd) {
          return fail(
            'INVALID_ARGUMENT',
            `startLine ${input.startLine} is past the end of '${shown}'${window.totalLines === undefined ? '' : ` (${window.totalLines} lines)`}`,
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
