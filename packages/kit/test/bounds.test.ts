import { describe, expect, it } from 'vitest';
import { createHeadTailBuffer, sliceList, sliceText } from '../src/bounds.js';
import { createCursorCodec } from '../src/cursor.js';

function walkText(input: Buffer, maxBytes: number, maxLines?: number): { pages: string[]; joined: Buffer } {
  const pages: string[] = [];
  let offset: number | undefined = 0;
  for (let guard = 0; offset !== undefined; guard++) {
    if (guard > input.length + 2) throw new Error('no progress');
    const slice = sliceText(input, { offset, maxBytes, ...(maxLines === undefined ? {} : { maxLines }) });
    pages.push(slice.text);
    offset = slice.nextOffset;
  }
  return { pages, joined: Buffer.from(pages.join(''), 'utf8') };
}

describe('sliceText', () => {
  // Mixed widths: ASCII, 2-byte (é), 3-byte (€), 4-byte (🙂) characters, long and empty lines.
  const sample = Buffer.from(
    Array.from(
      { length: 200 },
      (_, i) => `${i} ${'é€🙂'.repeat(i % 7)}${i % 13 === 0 ? '' : ' text'}\n${i % 17 === 0 ? '\n' : ''}`,
    ).join('') + 'tail without newline 🙂',
  );

  it.each([1, 2, 3, 5, 7, 64, 100, 1000, 1_000_000])(
    'pages of %i bytes reproduce the input byte for byte',
    (maxBytes) => {
      const { joined, pages } = walkText(sample, maxBytes);
      expect(joined.equals(sample)).toBe(true);
      for (const page of pages.slice(0, -1))
        expect(Buffer.byteLength(page)).toBeLessThanOrEqual(Math.max(maxBytes, 4));
    },
  );

  it.each([1, 3, 10])('pages of %i lines reproduce the input and hold that many lines', (maxLines) => {
    const { joined, pages } = walkText(sample, 1_000_000, maxLines);
    expect(joined.equals(sample)).toBe(true);
    for (const page of pages.slice(0, -1)) expect(page.split('\n').length - 1).toBe(maxLines);
  });

  it('reports totals and what cut the slice', () => {
    expect(sliceText('a\nbb\nccc\n', { maxBytes: 5 })).toEqual({
      text: 'a\nbb\n',
      nextOffset: 5,
      totalBytes: 9,
      totalLines: 3,
      cutBy: 'bytes',
    });
    expect(sliceText('a\nbb\nccc\n', { maxBytes: 100, maxLines: 1 })).toEqual({
      text: 'a\n',
      nextOffset: 2,
      totalBytes: 9,
      totalLines: 3,
      cutBy: 'lines',
    });
    expect(sliceText('a\nbb\nccc\n', { maxBytes: 100, maxLines: 3 })).toEqual({
      text: 'a\nbb\nccc\n',
      totalBytes: 9,
      totalLines: 3,
    });
    expect(sliceText('', { maxBytes: 10 })).toEqual({ text: '', totalBytes: 0, totalLines: 0 });
  });

  it('never splits a multi-byte character', () => {
    const slice = sliceText('🙂🙂', { maxBytes: 5 });
    expect(slice).toEqual({ text: '🙂', nextOffset: 4, totalBytes: 8, totalLines: 1, cutBy: 'bytes' });
  });
});

describe('sliceList', () => {
  it('visits every item exactly once', () => {
    const items = Array.from({ length: 23 }, (_, i) => i);
    const seen: number[] = [];
    let offset: number | undefined = 0;
    while (offset !== undefined) {
      const slice: ReturnType<typeof sliceList<number>> = sliceList(items, { offset, limit: 5 });
      expect(slice.total).toBe(23);
      seen.push(...slice.items);
      offset = slice.nextOffset;
    }
    expect(seen).toEqual(items);
  });
});

describe('cursors', () => {
  const codec = createCursorCodec(Buffer.alloc(32, 7));
  const binding = { server: 's', tool: 'read_text', args: { path: 'a.txt' } };

  it('round-trip their state', () => {
    expect(codec.decode(binding, codec.encode(binding, { o: 42 }))).toEqual({ ok: true, value: { o: 42 } });
  });

  it('reject a tampered cursor', () => {
    const cursor = codec.encode(binding, { o: 42 });
    const [payload, signature] = cursor.split('.') as [string, string];
    const forged = Buffer.from(
      JSON.stringify({ v: 1, b: JSON.parse(Buffer.from(payload, 'base64url').toString()).b, s: { o: 0 } }),
    ).toString('base64url');
    for (const bad of [
      `${forged}.${signature}`,
      `${payload}.${signature.slice(0, -2)}AA`,
      'garbage',
      `${payload}`,
      '.x',
    ]) {
      const result = codec.decode(binding, bad);
      expect(result.ok ? 'ok' : result.error.code).toBe('INVALID_ARGUMENT');
    }
  });

  it('reject a cursor from another tool, other arguments or another server secret', () => {
    const cursor = codec.encode(binding, { o: 42 });
    const otherTool = codec.decode({ ...binding, tool: 'tree' }, cursor);
    const otherArgs = codec.decode({ ...binding, args: { path: 'b.txt' } }, cursor);
    const otherSecret = createCursorCodec(Buffer.alloc(32, 8)).decode(binding, cursor);
    expect([otherTool, otherArgs, otherSecret].map((r) => (r.ok ? 'ok' : r.error.message))).toEqual([
      'cursor is not valid for this call: issued for another tool or other arguments',
      'cursor is not valid for this call: issued for another tool or other arguments',
      'cursor is not valid for this call: signature mismatch (tampered, or issued by another server)',
    ]);
  });
});

describe('head and tail buffer', () => {
  it('keeps everything under the cap', () => {
    const buffer = createHeadTailBuffer(100);
    buffer.push(Buffer.from('hello '));
    buffer.push(Buffer.from('world'));
    expect(buffer.result()).toEqual({
      text: 'hello world',
      bytes: Buffer.from('hello world'),
      totalBytes: 11,
      droppedBytes: 0,
    });
  });

  it('hands back a single chunk without copying it', () => {
    const buffer = createHeadTailBuffer(100);
    // Not from Buffer's shared pool, where a copy could land in the same ArrayBuffer.
    const chunk = Buffer.alloc(9, 'one chunk');
    buffer.push(chunk);
    const result = buffer.result();
    expect(result.bytes.buffer).toBe(chunk.buffer);
    expect(result.bytes.byteOffset).toBe(chunk.byteOffset);
    expect(result.text).toBe('one chunk');
  });

  it('keeps the head and the tail and counts the middle', () => {
    const buffer = createHeadTailBuffer(10);
    for (let i = 0; i < 100; i++) buffer.push(Buffer.from(String(i % 10)));
    expect(buffer.result()).toEqual({
      text: '01234\n[… 90 bytes omitted …]\n56789',
      bytes: Buffer.from('0123456789'),
      totalBytes: 100,
      droppedBytes: 90,
    });
  });
});
