import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { callErr, callOk, connect, type Client } from './helpers.js';

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

interface Read {
  binary: boolean;
  encoding: 'utf8' | 'base64' | 'none';
  content: string;
  startByte: number;
  endByte: number;
  truncated?: { nextCursor?: string };
}

/** Reads a whole file through the cursors, base64 windows decoded and text windows encoded, as bytes. */
async function readAll(
  client: Client,
  file: string,
  maxBytes: number,
): Promise<{ bytes: Buffer; reads: Read[] }> {
  const reads: Read[] = [];
  let cursor: string | undefined;
  do {
    const read = await callOk<Read>(client, 'read_file', {
      path: file,
      binary: 'base64',
      maxBytes,
      ...(cursor === undefined ? {} : { cursor }),
    });
    reads.push(read);
    cursor = read.truncated?.nextCursor;
    // A cursor that stops moving would loop for ever: no file here needs this many windows.
    if (reads.length > 500) throw new Error(`read_file's cursor did not reach the end of ${file}`);
  } while (cursor !== undefined);
  return {
    bytes: Buffer.concat(
      reads.map((read) => Buffer.from(read.content, read.encoding === 'base64' ? 'base64' : 'utf8')),
    ),
    reads,
  };
}

describe('read_file gives back the bytes asked for as base64, exactly', () => {
  const invalid: Array<[string, number[]]> = [
    ['a lone continuation byte', [0x80]],
    ['an overlong encoding', [0xc0, 0xaf]],
    ['a truncated sequence', [0xe2, 0x82]],
    ['an encoded surrogate', [0xed, 0xa0, 0x80]],
    ['a code point past U+10FFFF', [0xf5, 0x80, 0x80, 0x80]],
    ['0xFF', [0xff]],
    ['Latin-1 text', [0x63, 0x61, 0x66, 0xe9]],
  ];

  it.each(invalid)(
    'invalid UTF-8 without a NUL (%s) is binary: base64 is exact, metadata says so',
    async (_name, sequence) => {
      const root = await tempDir('keel-fs-bytes-');
      const bytes = Buffer.concat([Buffer.from('ok\n'), Buffer.from(sequence), Buffer.from('\nend\n')]);
      await writeFile(path.join(root, 'odd.txt'), bytes);
      const client = await connect([root]);
      const asked = await callOk<Read>(client, 'read_file', { path: 'odd.txt', binary: 'base64' });
      expect([asked.binary, asked.encoding, Buffer.from(asked.content, 'base64')]).toEqual([
        true,
        'base64',
        bytes,
      ]);
      const metadata = await callOk<Read>(client, 'read_file', { path: 'odd.txt' });
      expect([metadata.binary, metadata.encoding, metadata.content]).toEqual([true, 'none', '']);
    },
  );

  it('an invalid byte past the first 8 KiB, read in windows, still comes back exact', async () => {
    const root = await tempDir('keel-fs-bytes-');
    const bytes = Buffer.concat([
      Buffer.from('line\n'.repeat(3000)),
      Buffer.from([0xff, 0xfe]),
      Buffer.from('\ntail\n'),
    ]);
    await writeFile(path.join(root, 'late.txt'), bytes);
    const client = await connect([root]);
    const whole = await callOk<Read>(client, 'read_file', { path: 'late.txt', binary: 'base64' });
    expect([whole.binary, whole.encoding, Buffer.from(whole.content, 'base64')]).toEqual([
      true,
      'base64',
      bytes,
    ]);
    const windows = await readAll(client, 'late.txt', 4096);
    expect([windows.bytes.length, sha(windows.bytes)]).toEqual([bytes.length, sha(bytes)]);
    // The valid windows stay text; the one holding the bad bytes is base64.
    expect(windows.reads.some((read) => read.encoding === 'utf8')).toBe(true);
    expect(windows.reads.some((read) => read.encoding === 'base64')).toBe(true);
  });

  it.each([
    ['with NUL bytes', (data: Buffer) => data],
    ['without NUL bytes', (data: Buffer) => data.map((byte) => (byte === 0 ? 1 : byte))],
  ])('random bytes (%s) round-trip through base64 windows', async (_name, shape) => {
    const root = await tempDir('keel-fs-bytes-');
    const bytes = Buffer.from(shape(randomBytes(200_000)));
    await writeFile(path.join(root, 'random.bin'), bytes);
    const client = await connect([root]);
    // Compared by digest and length: a failing toEqual on 200 KB buffers spends minutes on its diff.
    const read = (await readAll(client, 'random.bin', 65_536)).bytes;
    expect([read.length, sha(read)]).toEqual([bytes.length, sha(bytes)]);
  });

  it('valid UTF-8 text stays text, and edit_file refuses what it could not write back byte for byte', async () => {
    const root = await tempDir('keel-fs-bytes-');
    await writeFile(path.join(root, 'text.txt'), 'héllo wörld ✓\n');
    await writeFile(path.join(root, 'latin1.txt'), Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a, 0x78, 0x0a]));
    const client = await connect([root]);
    const text = await callOk<Read>(client, 'read_file', { path: 'text.txt', binary: 'base64' });
    expect([text.binary, text.encoding, text.content]).toEqual([false, 'utf8', 'héllo wörld ✓\n']);
    const edit = await callErr(client, 'edit_file', {
      path: 'latin1.txt',
      edits: [{ oldText: 'x', newText: 'y' }],
    });
    expect([edit.code, edit.message]).toEqual(['INVALID_ARGUMENT', "'latin1.txt' is not UTF-8 text"]);
    const patched = await callErr(client, 'apply_patch', {
      patch: '--- a/latin1.txt\n+++ b/latin1.txt\n@@ -2 +2 @@\n-x\n+y\n',
    });
    expect([patched.code, patched.message]).toEqual(['INVALID_ARGUMENT', "'latin1.txt' is not UTF-8 text"]);
    expect(await readFile(path.join(root, 'latin1.txt'))).toEqual(
      Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a, 0x78, 0x0a]),
    );
  });
});
