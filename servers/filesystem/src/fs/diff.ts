import type { Truncation } from '@keel/kit';
import { diff } from '../util/lazy.js';

/** A unified diff of one file's change, cut to `maxBytes` on a line boundary. */
export async function unifiedDiff(
  shown: string,
  before: string,
  after: string,
  maxBytes: number,
): Promise<{ diff: string; truncated?: Truncation }> {
  const { createTwoFilesPatch } = await diff();
  const full = createTwoFilesPatch(`a/${shown}`, `b/${shown}`, before, after, undefined, undefined, {
    context: 3,
  })
    .split('\n')
    .filter((line) => !line.startsWith('====='))
    .join('\n');
  return capText(full, maxBytes);
}

function capText(text: string, maxBytes: number): { diff: string; truncated?: Truncation } {
  const bytes = Buffer.byteLength(text);
  if (bytes <= maxBytes) return { diff: text };
  const buffer = Buffer.from(text);
  let end = buffer.lastIndexOf(0x0a, maxBytes - 1) + 1;
  if (end <= 0) end = maxBytes;
  while (end > 0 && (buffer[end]! & 0xc0) === 0x80) end--;
  return {
    diff: buffer.subarray(0, end).toString('utf8'),
    truncated: { limit: maxBytes, unit: 'bytes', total: bytes },
  };
}
