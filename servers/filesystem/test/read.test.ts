import { mkdir, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { callErr, callOk, connect, kinds } from './helpers.js';

const sha = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

describe.each(kinds)('reading (%s client)', (kind) => {
  it('read_file returns a line window with totals and sha256', async () => {
    const root = await tempDir();
    const text = Array.from({ length: 10 }, (_, i) => `line ${i + 1}`).join('\n') + '\n';
    await writeFile(path.join(root, 'a.txt'), text);
    const client = await connect([root], kind);
    const out = await callOk(client, 'read_file', { path: 'a.txt', startLine: 3, endLine: 4 });
    expect(out).toEqual({
      path: 'a.txt',
      size: text.length,
      mtime: expect.any(String),
      binary: false,
      encoding: 'utf8',
      content: 'line 3\nline 4\n',
      startByte: 14,
      endByte: 28,
      startLine: 3,
      endLine: 4,
      totalLines: 10,
      sha256: sha(text),
    });
  });

  it('read_file tailLines reads the end of a file', async () => {
    const root = await tempDir();
    await writeFile(path.join(root, 'log.txt'), 'one\ntwo\nthree\nfour\n');
    await writeFile(path.join(root, 'open.txt'), 'one\ntwo\nthree');
    const client = await connect([root], kind);
    expect(await callOk(client, 'read_file', { path: 'log.txt', tailLines: 2 })).toMatchObject({
      content: 'three\nfour\n',
      startLine: 3,
      endLine: 4,
      totalLines: 4,
    });
    expect(await callOk(client, 'read_file', { path: 'open.txt', tailLines: 1 })).toMatchObject({
      content: 'three',
      startLine: 3,
      endLine: 3,
    });
    expect(await callOk(client, 'read_file', { path: 'log.txt', tailLines: 10 })).toMatchObject({
      content: 'one\ntwo\nthree\nfour\n',
      startLine: 1,
    });
    expect(await callErr(client, 'read_file', { path: 'log.txt', tailLines: 1, startLine: 1 })).toEqual({
      code: 'INVALID_ARGUMENT',
      message: 'invalid arguments for read_file: `tailLines` and `startLine` cannot be used together',
      hint: 'Pass the arguments of one mode only: `startLine`/`endLine`, or `byteOffset`, or `tailLines` (the input schema lists the alternatives).',
      retryable: false,
      details: {
        conflicting: ['tailLines', 'startLine'],
        modes: [['startLine', 'endLine'], ['byteOffset'], ['tailLines']],
      },
    });
  });

  it("read_file's modes are in its published schema, which the Anthropic API accepts", async () => {
    const client = await connect([await tempDir()], kind);
    const { tools } = await client.listTools();
    const schema = tools.find((tool) => tool.name === 'read_file')?.inputSchema as Record<string, unknown>;
    expect({
      type: schema['type'],
      description: schema['description'],
      required: schema['required'],
      properties: Object.keys(schema['properties'] as object),
      not: schema['not'],
    }).toEqual({
      type: 'object',
      description:
        'One of: By lines: startLine/endLine (default: from the first line). | By bytes: from byteOffset. | The end of the file: its last tailLines lines.',
      required: ['path'],
      properties: [
        'path',
        'maxBytes',
        'binary',
        'totals',
        'cursor',
        'startLine',
        'endLine',
        'byteOffset',
        'tailLines',
      ],
      not: {
        anyOf: [
          { required: ['startLine', 'byteOffset'] },
          { required: ['startLine', 'tailLines'] },
          { required: ['endLine', 'byteOffset'] },
          { required: ['endLine', 'tailLines'] },
          { required: ['byteOffset', 'tailLines'] },
        ],
      },
    });
    // The Anthropic API refuses a whole request whose tool list has these at the top of a schema.
    expect(
      tools.flatMap((tool) =>
        ['oneOf', 'anyOf', 'allOf']
          .filter((key) => key in (tool.inputSchema as object))
          .map((key) => `${tool.name}.${key}`),
      ),
    ).toEqual([]);
  });

  it('read_file cursor walk reproduces the file byte for byte', async () => {
    const root = await tempDir();
    const text = Array.from({ length: 500 }, (_, i) => `row ${i} ${'é'.repeat(i % 7)}`).join('\n');
    await writeFile(path.join(root, 'big.txt'), text);
    const client = await connect([root], kind);
    let cursor: string | undefined;
    let joined = '';
    let pages = 0;
    do {
      const out = await callOk<{ content: string; truncated?: { nextCursor?: string } }>(
        client,
        'read_file',
        {
          path: 'big.txt',
          maxBytes: 700,
          ...(cursor === undefined ? {} : { cursor }),
        },
      );
      joined += out.content;
      cursor = out.truncated?.nextCursor;
      pages++;
    } while (cursor !== undefined);
    expect(joined).toBe(text);
    expect(pages).toBeGreaterThan(5);
  });

  it('read_file never splits a character, even under a tiny budget', async () => {
    const root = await tempDir();
    const text = '€uro ✓ 𝄞 end';
    await writeFile(path.join(root, 'u.txt'), text);
    const client = await connect([root], kind);
    let cursor: string | undefined;
    const pieces: string[] = [];
    do {
      const out = await callOk<{ content: string; truncated?: { nextCursor?: string } }>(
        client,
        'read_file',
        { path: 'u.txt', maxBytes: 2, ...(cursor === undefined ? {} : { cursor }) },
      );
      pieces.push(out.content);
      cursor = out.truncated?.nextCursor;
    } while (cursor !== undefined);
    expect(pieces.join('')).toBe(text);
    expect(pieces.some((p) => p.includes('\uFFFD'))).toBe(false);
  });

  it('read_file reports binary metadata, base64 only when asked', async () => {
    const root = await tempDir();
    const bytes = Buffer.from([0, 1, 2, 3, 255, 0, 10]);
    await writeFile(path.join(root, 'b.bin'), bytes);
    const client = await connect([root], kind);
    const meta = await callOk(client, 'read_file', { path: 'b.bin' });
    expect(meta).toMatchObject({ binary: true, encoding: 'none', content: '', size: 7 });
    const raw = await callOk(client, 'read_file', { path: 'b.bin', binary: 'base64', maxBytes: 4 });
    expect(raw).toMatchObject({
      binary: true,
      encoding: 'base64',
      content: bytes.subarray(0, 4).toString('base64'),
      startByte: 0,
      endByte: 4,
      sha256: sha(bytes),
    });
  });

  it('read_file errors name the object and the way forward', async () => {
    const root = await tempDir();
    await writeFile(path.join(root, 'a.txt'), 'one\ntwo\n');
    const client = await connect([root], kind);
    expect(await callErr(client, 'read_file', { path: 'nope.txt' })).toMatchObject({ code: 'NOT_FOUND' });
    expect(await callErr(client, 'read_file', { path: 'a.txt', startLine: 9 })).toEqual({
      code: 'INVALID_ARGUMENT',
      message: "startLine 9 is past the end of 'a.txt' (2 lines)",
      hint: 'Pass a startLine within the file; read without startLine to see its length.',
      retryable: false,
      details: { totalLines: 2 },
    });
    expect((await callErr(client, 'read_file', { path: '.' })).code).toBe('INVALID_ARGUMENT');
    expect(await callErr(client, 'read_file', { path: 'a.txt', startLine: 1, byteOffset: 2 })).toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: 'invalid arguments for read_file: `startLine` and `byteOffset` cannot be used together',
      details: { conflicting: ['startLine', 'byteOffset'] },
    });
  });

  it('a FIFO in the roots is refused by name, never waited on', async () => {
    const root = await tempDir();
    await writeFile(path.join(root, 'a.txt'), 'TODO one\n');
    execFileSync('mkfifo', [path.join(root, 'pipe')]);
    const client = await connect([root], kind);
    // Opening a FIFO for reading blocks until a writer comes; the server must not open it that way.
    expect(await callErr(client, 'read_file', { path: 'pipe' })).toEqual({
      code: 'INVALID_ARGUMENT',
      message: "'pipe' is not a regular file",
      hint: 'Read regular files; stat shows what a path is.',
      retryable: false,
    });
    const both = await callOk<{ files: Array<{ path: string; ok: boolean }> }>(client, 'read_files', {
      paths: ['pipe', 'a.txt'],
    });
    expect(both.files.map((file) => [file.path, file.ok])).toEqual([
      ['pipe', false],
      ['a.txt', true],
    ]);
    expect(
      await callErr(client, 'edit_file', { path: 'pipe', edits: [{ oldText: 'a', newText: 'b' }] }),
    ).toMatchObject({ code: 'INVALID_ARGUMENT', message: "'pipe' is not a regular file" });
    const found = await callOk<{ matches: Array<{ path: string }> }>(client, 'search_text', {
      pattern: 'TODO',
    });
    expect(found.matches.map((match) => match.path)).toEqual(['a.txt']);
  });

  it('read_files shares one budget and reports per-file errors', async () => {
    const root = await tempDir();
    await writeFile(path.join(root, 'small.txt'), 'tiny\n');
    await writeFile(path.join(root, 'large.txt'), 'x'.repeat(5000));
    const client = await connect([root], kind);
    const out = await callOk<{ files: Array<Record<string, unknown>>; totalBytes: number }>(
      client,
      'read_files',
      {
        paths: ['small.txt', 'missing.txt', 'large.txt'],
        maxBytes: 1000,
      },
    );
    expect(out.files[0]).toEqual({
      path: 'small.txt',
      ok: true,
      content: 'tiny\n',
      size: 5,
      binary: false,
      totalLines: 1,
      sha256: sha('tiny\n'),
    });
    expect(out.files[1]).toEqual({
      path: 'missing.txt',
      ok: false,
      error: { code: 'NOT_FOUND', message: "file 'missing.txt' does not exist" },
    });
    // The missing file's share passes on: 1000 - 5 left for the last file.
    expect(out.files[2]).toMatchObject({
      path: 'large.txt',
      ok: true,
      truncated: { limit: 995, unit: 'bytes', total: 5000, continueAtByte: 995 },
    });
    expect(out.totalBytes).toBe(1000);
  });

  it('list_directory sorts, filters and pages; the cursor walk equals the full listing', async () => {
    const root = await tempDir();
    await mkdir(path.join(root, 'dir'));
    for (let i = 0; i < 25; i++)
      await writeFile(path.join(root, `f${String(i).padStart(2, '0')}.txt`), 'x'.repeat(i));
    await writeFile(path.join(root, '.hidden'), '');
    const client = await connect([root], kind);
    const full = await callOk<{ entries: Array<{ name: string }>; total: number }>(client, 'list_directory', {
      limit: 1000,
    });
    expect(full.total).toBe(27);
    const names: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await callOk<{ entries: Array<{ name: string }>; truncated?: { nextCursor?: string } }>(
        client,
        'list_directory',
        {
          limit: 4,
          ...(cursor === undefined ? {} : { cursor }),
        },
      );
      names.push(...page.entries.map((e) => e.name));
      cursor = page.truncated?.nextCursor;
    } while (cursor !== undefined);
    expect(names).toEqual(full.entries.map((e) => e.name));
    const bySize = await callOk<{ entries: Array<{ name: string; size: number; type: string }> }>(
      client,
      'list_directory',
      {
        sort: 'size',
        order: 'desc',
        glob: 'f*.txt',
        limit: 2,
      },
    );
    expect(bySize.entries.map((e) => [e.name, e.size, e.type])).toEqual([
      ['f24.txt', 24, 'file'],
      ['f23.txt', 23, 'file'],
    ]);
    const noHidden = await callOk<{ total: number }>(client, 'list_directory', { hidden: false });
    expect(noHidden.total).toBe(26);
  });

  it('stat describes files, directories, links and missing paths', async () => {
    const root = await tempDir();
    await writeFile(path.join(root, 'a.txt'), 'abc');
    const client = await connect([root], kind);
    expect(await callOk(client, 'stat', { path: 'a.txt' })).toMatchObject({
      path: 'a.txt',
      exists: true,
      type: 'file',
      size: 3,
    });
    expect(await callOk(client, 'stat', { path: '.' })).toMatchObject({
      path: '.',
      exists: true,
      type: 'directory',
    });
    expect(await callOk(client, 'stat', { path: 'gone' })).toEqual({ path: 'gone', exists: false });
  });

  it('list_roots names the roots and the write rules', async () => {
    const root = await tempDir();
    const client = await connect([root], kind, ['--deny', '**/*.pem']);
    expect(await callOk(client, 'list_roots', {})).toEqual({
      roots: [{ path: root, name: path.basename(root) }],
      gitWrites: false,
      deny: ['**/*.pem'],
    });
  });
});
