import * as z from 'zod';

/**
 * The uniform marker of a cut result: the budget that cut it, the full size when known, and the
 * cursor that continues exactly where the cut happened.
 */
export interface Truncation {
  limit: number;
  unit: 'bytes' | 'lines' | 'items';
  total?: number;
  nextCursor?: string;
}

export const truncationSchema = z
  .object({
    limit: z.number().describe('The budget that cut this result.'),
    unit: z.enum(['bytes', 'lines', 'items']).describe('What the limit counts.'),
    total: z.number().optional().describe('The full size in the same unit, when known.'),
    nextCursor: z.string().optional().describe('Pass as `cursor` with the same arguments to continue.'),
  })
  .describe('Present only when the result was cut to its budget.');

/**
 * A per-call budget argument: a server default and a hard cap the schema advertises, so a client
 * sees the ceiling before it asks. The description does not repeat them: `default` and `maximum`
 * sit beside it in the published schema.
 */
export function budgetArg(options: { default: number; max: number; unit: string; what: string }) {
  return z
    .number()
    .int()
    .positive()
    .max(options.max)
    .default(options.default)
    .describe(`Maximum ${options.unit} of ${options.what} to return.`);
}

export const cursorArg = z
  .string()
  .min(1)
  .max(4096)
  .optional()
  .describe('To continue a cut result: its `truncated.nextCursor`, with the same arguments.');

export interface TextSlice {
  text: string;
  /** Byte offset where the next slice starts, when the text was cut. */
  nextOffset?: number;
  totalBytes: number;
  /** Lines of the whole input; counted on first read, since a caller paging a large diff may never ask. */
  readonly totalLines: number;
  /** What cut the slice: the byte budget or the line budget. */
  cutBy?: 'bytes' | 'lines';
}

/**
 * Cuts `text` from byte `offset` to at most `maxBytes` bytes and `maxLines` lines, never inside a
 * UTF-8 character, preferring to end on a line break. Concatenating the slices produced by following
 * `nextOffset` reproduces the input byte for byte.
 */
export function sliceText(
  input: string | Buffer,
  options: { offset?: number; maxBytes: number; maxLines?: number },
): TextSlice {
  const buffer = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  const start = Math.min(options.offset ?? 0, buffer.length);
  let end = Math.min(buffer.length, start + options.maxBytes);
  let cutBy: 'bytes' | 'lines' | undefined = end < buffer.length ? 'bytes' : undefined;

  if (options.maxLines !== undefined) {
    let lines = 0;
    for (let i = start; i < end; i++) {
      if (buffer[i] === 0x0a && ++lines === options.maxLines) {
        if (i + 1 < buffer.length) {
          end = i + 1;
          cutBy = 'lines';
        }
        break;
      }
    }
  }
  if (cutBy === 'bytes') {
    const lastBreak = buffer.lastIndexOf(0x0a, end - 1);
    if (lastBreak >= start && lastBreak + 1 > start + options.maxBytes / 2) end = lastBreak + 1;
    else end = utf8Boundary(buffer, end, start);
  }
  let totalLines: number | undefined;
  const slice: TextSlice = {
    text: buffer.subarray(start, end).toString('utf8'),
    totalBytes: buffer.length,
    get totalLines() {
      return (totalLines ??= countLines(buffer));
    },
  };
  if (end < buffer.length && cutBy !== undefined) {
    slice.nextOffset = end;
    slice.cutBy = cutBy;
  }
  return slice;
}

/** Moves `end` back until it does not split a UTF-8 sequence (never before `floor + 1` unless unavoidable). */
function utf8Boundary(buffer: Buffer, end: number, floor: number): number {
  let cut = end;
  while (cut > floor && cut < buffer.length && (buffer[cut]! & 0xc0) === 0x80) cut--;
  if (cut === floor) {
    // A single character larger than the budget: emit it whole rather than loop forever.
    cut = end;
    while (cut < buffer.length && (buffer[cut]! & 0xc0) === 0x80) cut++;
  }
  return cut;
}

export function countLines(buffer: Buffer): number {
  if (buffer.length === 0) return 0;
  let lines = 0;
  let at = buffer.indexOf(0x0a);
  while (at !== -1) {
    lines++;
    at = buffer.indexOf(0x0a, at + 1);
  }
  return buffer[buffer.length - 1] === 0x0a ? lines : lines + 1;
}

export interface ListSlice<TItem> {
  items: TItem[];
  nextOffset?: number;
  total: number;
}

/** Takes at most `limit` items from `offset`; following `nextOffset` visits every item once. */
export function sliceList<TItem>(
  items: readonly TItem[],
  options: { offset?: number; limit: number },
): ListSlice<TItem> {
  const start = Math.min(options.offset ?? 0, items.length);
  const end = Math.min(items.length, start + options.limit);
  const slice: ListSlice<TItem> = { items: items.slice(start, end), total: items.length };
  if (end < items.length) slice.nextOffset = end;
  return slice;
}

/**
 * Collects a stream under a byte budget, keeping the head and the tail and counting what was dropped
 * between them — the part of a long log that says what happened is usually at one end or the other.
 */
export interface HeadTailBuffer {
  push(chunk: Buffer): void;
  result(): CappedText;
}

export interface CappedText {
  /**
   * The kept output as UTF-8 text, with a `[… N bytes omitted …]` line where the middle was dropped.
   * Decoded on first read: a caller that works on `bytes` never pays for decoding megabytes.
   */
  readonly text: string;
  /** The kept bytes as received: the head, then the tail (no marker between them). */
  readonly bytes: Buffer;
  totalBytes: number;
  droppedBytes: number;
}

const emptyBuffer = Buffer.alloc(0);

/** One buffer of the chunks, without a copy when there is only one. */
function joined(chunks: readonly Buffer[]): Buffer {
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

export function createHeadTailBuffer(maxBytes: number): HeadTailBuffer {
  const headLimit = Math.ceil(maxBytes / 2);
  const tailLimit = maxBytes - headLimit;
  const head: Buffer[] = [];
  let headBytes = 0;
  let tail: Buffer[] = [];
  let tailBytes = 0;
  let total = 0;

  return {
    push(chunk) {
      total += chunk.length;
      let rest = chunk;
      if (headBytes < headLimit) {
        const take = rest.subarray(0, headLimit - headBytes);
        head.push(take);
        headBytes += take.length;
        rest = rest.subarray(take.length);
      }
      if (rest.length === 0 || tailLimit === 0) return;
      tail.push(rest);
      tailBytes += rest.length;
      if (tailBytes > tailLimit * 2) {
        const kept = Buffer.concat(tail).subarray(-tailLimit);
        tail = [kept];
        tailBytes = kept.length;
      }
    },
    result() {
      const headBuf = joined(head);
      const tailBuf = tailLimit === 0 ? emptyBuffer : joined(tail).subarray(-tailLimit);
      const dropped = Math.max(0, total - headBuf.length - tailBuf.length);
      const bytes = tailBuf.length === 0 ? headBuf : Buffer.concat([headBuf, tailBuf]);
      let text: string | undefined;
      return {
        get text() {
          text ??=
            dropped > 0
              ? `${headBuf.toString('utf8')}\n[… ${dropped} bytes omitted …]\n${tailBuf.toString('utf8')}`
              : bytes.toString('utf8');
          return text;
        },
        bytes,
        totalBytes: total,
        droppedBytes: dropped,
      };
    },
  };
}
