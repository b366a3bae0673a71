import { createHash } from 'node:crypto';

/** Positional reads; a FileHandle is one, and so is a synchronous descriptor wrapped by `syncReader`. */
export interface PositionalReader {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
}

/** Files up to this size are read whole, so their sha256 and line count come with every read. */
export const wholeFileLimit = 8 * 1024 * 1024;
const chunkSize = 1024 * 1024;

export interface WindowRequest {
  /** 1-based first line (line mode). */
  startLine?: number | undefined;
  /** 1-based last line, inclusive (line mode). */
  endLine?: number | undefined;
  /** First byte (byte mode). */
  byteOffset?: number | undefined;
  /** The last N lines (tail mode): found by reading backwards from the end. */
  tailLines?: number | undefined;
  maxBytes: number;
  /** Continue at this byte, whose line number is `resumeLine` when known. */
  resumeAt?: { byte: number; line: number | undefined } | undefined;
  totals: boolean;
  /** Cut only on byte budget (binary); text windows prefer a line break and never split a character. */
  raw: boolean;
}

export interface WindowResult {
  bytes: Buffer;
  startByte: number;
  endByte: number;
  startLine: number | undefined;
  /** Line number of the byte at `endByte` (where a continuation starts). */
  nextLine: number | undefined;
  /** Whether the selection continues past this window. */
  more: boolean;
  /** Whether the selection ended before the window was full. */
  sha256: string | undefined;
  totalLines: number | undefined;
  /** Set when startLine is past the end of the file. */
  pastEnd: boolean;
}

interface Source {
  size: number;
  read(position: number, length: number): Promise<Buffer>;
}

function sourceOf(handle: PositionalReader, size: number, whole: Buffer | undefined): Source {
  if (whole !== undefined) {
    return {
      size: whole.length,
      read: async (position, length) => whole.subarray(position, Math.min(whole.length, position + length)),
    };
  }
  return {
    size,
    async read(position, length) {
      const buffer = Buffer.allocUnsafe(Math.max(0, Math.min(length, size - position)));
      let filled = 0;
      while (filled < buffer.length) {
        const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, position + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      return buffer.subarray(0, filled);
    },
  };
}

/**
 * Reads one window of a file: a line range or a byte range, at most `maxBytes`, without loading more
 * of a large file than the window needs (unless whole-file totals were asked for).
 */
export async function readWindow(
  handle: PositionalReader,
  size: number,
  request: WindowRequest,
): Promise<WindowResult> {
  let whole: Buffer | undefined;
  let sha256: string | undefined;
  let totalLines: number | undefined;
  if (request.totals || size <= wholeFileLimit) {
    if (size <= wholeFileLimit) {
      // Positional reads: handle.readFile() reads from the handle's current offset, so a second window
      // on the same handle would see nothing.
      whole = await sourceOf(handle, size, undefined).read(0, size);
      sha256 = createHash('sha256').update(whole).digest('hex');
      totalLines = countLines(whole);
    } else {
      const hash = createHash('sha256');
      let lines = 0;
      let last = 0x0a;
      for (let position = 0; position < size; position += chunkSize) {
        const chunk = await sourceOf(handle, size, undefined).read(position, chunkSize);
        if (chunk.length === 0) break;
        hash.update(chunk);
        lines += countNewlines(chunk);
        last = chunk[chunk.length - 1]!;
      }
      sha256 = hash.digest('hex');
      totalLines = size === 0 ? 0 : last === 0x0a ? lines : lines + 1;
    }
  }
  const source = sourceOf(handle, size, whole);
  const fileSize = source.size;

  let startByte: number;
  let startLine: number | undefined;
  if (request.resumeAt !== undefined) {
    startByte = Math.min(request.resumeAt.byte, fileSize);
    startLine = request.resumeAt.line;
  } else if (request.startLine !== undefined) {
    const found = await findLineStart(source, request.startLine);
    if (found === undefined) {
      return {
        bytes: Buffer.alloc(0),
        startByte: fileSize,
        endByte: fileSize,
        startLine: undefined,
        nextLine: undefined,
        more: false,
        sha256,
        totalLines,
        pastEnd: true,
      };
    }
    startByte = found;
    startLine = request.startLine;
  } else if (request.tailLines !== undefined) {
    startByte = await findTailStart(source, request.tailLines);
    startLine =
      startByte === 0
        ? 1
        : totalLines === undefined
          ? undefined
          : Math.max(1, totalLines - request.tailLines + 1);
  } else {
    startByte = Math.min(request.byteOffset ?? 0, fileSize);
    startLine = startByte === 0 ? 1 : undefined;
  }

  // Read the budget plus one byte, to know whether the selection goes on. A line range usually ends
  // well before the budget, so it is read in growing steps rather than all at once.
  // Three bytes more than that, so a character that straddles the budget can be completed.
  const budget = request.maxBytes + 4;
  const linesWanted =
    request.endLine !== undefined && startLine !== undefined ? request.endLine - startLine + 1 : undefined;
  let data: Buffer = Buffer.alloc(0);
  let end: number | undefined;
  for (
    let step = linesWanted === undefined ? budget : Math.min(budget, 16_384);
    ;
    step = Math.min(budget, step * 4)
  ) {
    data = await source.read(startByte, step);
    if (linesWanted !== undefined) end = nthNewlineEnd(data, linesWanted);
    if (end !== undefined || step === budget || startByte + data.length >= fileSize) break;
  }
  let selection = data;
  let selectionEnds = startByte + data.length >= fileSize;
  if (end !== undefined) {
    selection = data.subarray(0, end);
    selectionEnds = true;
  }
  let cut = selection.length;
  if (selection.length > request.maxBytes) {
    cut = request.maxBytes;
    if (!request.raw) {
      const lastBreak = selection.lastIndexOf(0x0a, cut - 1);
      if (lastBreak + 1 > cut / 2) cut = lastBreak + 1;
      else cut = utf8Boundary(selection, cut);
    }
  }
  const more = cut < selection.length || !selectionEnds;
  const bytes = selection.subarray(0, cut);
  const nextLine = startLine === undefined ? undefined : startLine + countNewlines(bytes);
  return {
    bytes,
    startByte,
    endByte: startByte + bytes.length,
    startLine,
    nextLine,
    more,
    sha256,
    totalLines,
    pastEnd: false,
  };
}

/** The first byte of the last `lines` lines (a final newline does not start another line). */
async function findTailStart(source: Source, lines: number): Promise<number> {
  let end = source.size;
  if (end === 0) return 0;
  const last = await source.read(end - 1, 1);
  if (last[0] === 0x0a) end--;
  let seen = 0;
  // Tails are usually short: start with a small step and grow it.
  for (let position = end, step = 16_384; position > 0; step = Math.min(chunkSize, step * 4)) {
    const from = Math.max(0, position - step);
    const chunk = await source.read(from, position - from);
    let at = chunk.lastIndexOf(0x0a);
    while (at !== -1) {
      if (++seen === lines) return from + at + 1;
      at = at === 0 ? -1 : chunk.lastIndexOf(0x0a, at - 1);
    }
    position = from;
  }
  return 0;
}

async function findLineStart(source: Source, line: number): Promise<number | undefined> {
  if (line === 1) return 0;
  let seen = 1;
  for (let position = 0; position < source.size; position += chunkSize) {
    const chunk = await source.read(position, chunkSize);
    let at = chunk.indexOf(0x0a);
    while (at !== -1) {
      seen++;
      if (seen === line) return position + at + 1 < source.size ? position + at + 1 : undefined;
      at = chunk.indexOf(0x0a, at + 1);
    }
  }
  return undefined;
}

/** The byte just after the n-th newline, or undefined when there are fewer. */
function nthNewlineEnd(buffer: Buffer, n: number): number | undefined {
  let count = 0;
  let at = buffer.indexOf(0x0a);
  while (at !== -1) {
    if (++count === n) return at + 1;
    at = buffer.indexOf(0x0a, at + 1);
  }
  return undefined;
}

function utf8Boundary(buffer: Buffer, end: number): number {
  let cut = end;
  while (cut > 0 && (buffer[cut]! & 0xc0) === 0x80) cut--;
  if (cut > 0) return cut;
  // One character wider than the budget: return it whole rather than split it or stall.
  cut = end;
  while (cut < buffer.length && (buffer[cut]! & 0xc0) === 0x80) cut++;
  return cut;
}

function countNewlines(buffer: Buffer): number {
  let lines = 0;
  let at = buffer.indexOf(0x0a);
  while (at !== -1) {
    lines++;
    at = buffer.indexOf(0x0a, at + 1);
  }
  return lines;
}

function countLines(buffer: Buffer): number {
  if (buffer.length === 0) return 0;
  const newlines = countNewlines(buffer);
  return buffer[buffer.length - 1] === 0x0a ? newlines : newlines + 1;
}
