import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { callErr, callOk, connect, kinds } from './helpers.js';

const sha = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const read = (root: string, name: string) => readFile(path.join(root, name), 'utf8');

describe.each(kinds)('writing (%s client)', (kind) => {
  it('write_file creates, overwrites with a sha256 precondition, and leaves no temp files', async () => {
    const root = await tempDir();
    const client = await connect([root], kind);
    expect(await callOk(client, 'write_file', { path: 'a.txt', content: 'one\n', mode: 'create' })).toEqual({
      path: 'a.txt',
      bytes: 4,
      sha256: sha('one\n'),
      created: true,
    });
    expect(
      await callErr(client, 'write_file', { path: 'a.txt', content: 'x', mode: 'create' }),
    ).toMatchObject({ code: 'ALREADY_EXISTS' });
    const stale = await callErr(client, 'write_file', {
      path: 'a.txt',
      content: 'two\n',
      expectedSha256: sha('other'),
    });
    expect(stale).toMatchObject({
      code: 'PRECONDITION_FAILED',
      message: `file 'a.txt' changed: its sha256 is ${sha('one\n')}, not the expected ${sha('other')}`,
    });
    expect(await read(root, 'a.txt')).toBe('one\n');
    expect(
      await callOk(client, 'write_file', { path: 'a.txt', content: 'two\n', expectedSha256: sha('one\n') }),
    ).toMatchObject({ created: false, sha256: sha('two\n') });
    expect(await read(root, 'a.txt')).toBe('two\n');
    expect(await callErr(client, 'write_file', { path: 'new/dir/b.txt', content: 'b' })).toMatchObject({
      code: 'NOT_FOUND',
    });
    await callOk(client, 'write_file', {
      path: 'new/dir/b.txt',
      content: 'AAEC',
      encoding: 'base64',
      createParents: true,
    });
    expect(await readFile(path.join(root, 'new/dir/b.txt'))).toEqual(Buffer.from([0, 1, 2]));
    expect((await readdir(root)).sort()).toEqual(['a.txt', 'new']);
  });

  it('edit_file requires a unique match, lists ambiguous lines, and returns the diff', async () => {
    const root = await tempDir();
    await writeFile(path.join(root, 'a.ts'), 'let x = 1;\nlet y = 1;\nlet x = 1;\n');
    const client = await connect([root], kind);
    expect(
      await callErr(client, 'edit_file', {
        path: 'a.ts',
        edits: [{ oldText: 'let x = 1;', newText: 'let x = 2;' }],
      }),
    ).toEqual({
      code: 'CONFLICT',
      message: `edit 1: oldText "let x = 1;" occurs 2 times in 'a.ts', on lines 1, 3`,
      hint: 'Include surrounding lines in oldText so it matches once, or pass replaceAll: true to replace every occurrence.',
      retryable: false,
      details: { edit: 1, matches: 2, lines: [1, 3] },
    });
    expect(
      await callErr(client, 'edit_file', { path: 'a.ts', edits: [{ oldText: 'let z', newText: '' }] }),
    ).toMatchObject({ code: 'NOT_FOUND' });
    const dry = await callOk(client, 'edit_file', {
      path: 'a.ts',
      edits: [{ oldText: 'let y = 1;', newText: 'let y = 5;' }],
      dryRun: true,
    });
    expect(dry).toEqual({
      path: 'a.ts',
      diff: '--- a/a.ts\n+++ b/a.ts\n@@ -1,3 +1,3 @@\n let x = 1;\n-let y = 1;\n+let y = 5;\n let x = 1;\n',
      replacements: 1,
      previousSha256: sha('let x = 1;\nlet y = 1;\nlet x = 1;\n'),
      sha256: sha('let x = 1;\nlet y = 5;\nlet x = 1;\n'),
      dryRun: true,
    });
    expect(await read(root, 'a.ts')).toBe('let x = 1;\nlet y = 1;\nlet x = 1;\n');
    const done = await callOk(client, 'edit_file', {
      path: 'a.ts',
      edits: [
        { oldText: 'let x = 1;', newText: 'const x = 1;', replaceAll: true },
        { oldText: 'let y', newText: 'const y' },
      ],
    });
    expect(done).toMatchObject({
      replacements: 3,
      dryRun: false,
      sha256: sha('const x = 1;\nconst y = 1;\nconst x = 1;\n'),
    });
    expect(await read(root, 'a.ts')).toBe('const x = 1;\nconst y = 1;\nconst x = 1;\n');
  });

  it('edit_file keeps CRLF line ends', async () => {
    const root = await tempDir();
    await writeFile(path.join(root, 'w.txt'), 'a\r\nb\r\nc\r\n');
    const client = await connect([root], kind);
    await callOk(client, 'edit_file', {
      path: 'w.txt',
      edits: [{ oldText: 'a\nb\n', newText: 'a\nB\nB2\n' }],
    });
    expect(await read(root, 'w.txt')).toBe('a\r\nB\r\nB2\r\nc\r\n');
  });

  it('apply_patch applies several files or none', async () => {
    const root = await tempDir();
    await writeFile(path.join(root, 'one.txt'), 'a\nb\nc\n');
    await writeFile(path.join(root, 'two.txt'), 'x\ny\nz\n');
    await writeFile(path.join(root, 'old.txt'), 'bye\n');
    const client = await connect([root], kind);
    const good = [
      '--- a/one.txt',
      '+++ b/one.txt',
      '@@ -1,3 +1,3 @@',
      ' a',
      '-b',
      '+B',
      ' c',
      '--- /dev/null',
      '+++ b/new/file.txt',
      '@@ -0,0 +1,1 @@',
      '+fresh',
      '--- a/old.txt',
      '+++ /dev/null',
      '@@ -1,1 +0,0 @@',
      '-bye',
      '',
    ].join('\n');
    const bad = [
      '--- a/two.txt',
      '+++ b/two.txt',
      '@@ -1,3 +1,3 @@',
      ' x',
      '-y',
      '+Y',
      ' z',
      '--- a/one.txt',
      '+++ b/one.txt',
      '@@ -1,3 +1,3 @@',
      ' a',
      '-nope',
      '+B',
      ' c',
      '',
    ].join('\n');
    const failed = await callErr(client, 'apply_patch', { patch: bad });
    expect(failed).toMatchObject({
      code: 'CONFLICT',
      message: "hunk 1 of 1 for 'one.txt' (@@ -1,3 +1,3 @@) does not apply; nothing was written",
    });
    expect(await read(root, 'two.txt')).toBe('x\ny\nz\n');
    const dry = await callOk(client, 'apply_patch', { patch: good, dryRun: true });
    expect(dry).toEqual({
      files: [
        { path: 'one.txt', action: 'modify', hunks: 1, sha256: sha('a\nB\nc\n') },
        { path: 'new/file.txt', action: 'create', hunks: 1, sha256: sha('fresh\n') },
        { path: 'old.txt', action: 'delete', hunks: 1 },
      ],
      dryRun: true,
    });
    expect(await read(root, 'one.txt')).toBe('a\nb\nc\n');
    expect(await callOk(client, 'apply_patch', { patch: good })).toEqual({ ...dry, dryRun: false });
    expect(await read(root, 'one.txt')).toBe('a\nB\nc\n');
    expect(await read(root, 'new/file.txt')).toBe('fresh\n');
    expect((await readdir(root)).sort()).toEqual(['new', 'one.txt', 'two.txt']);
  });

  it('create_directory, move and delete', async () => {
    const root = await tempDir();
    await writeFile(path.join(root, 'a.txt'), 'A');
    await writeFile(path.join(root, 'b.txt'), 'B');
    await symlink('a.txt', path.join(root, 'link'));
    const client = await connect([root], kind);
    expect(await callOk(client, 'create_directory', { path: 'd/e/f' })).toEqual({
      path: 'd/e/f',
      created: true,
    });
    expect(await callOk(client, 'create_directory', { path: 'd/e/f' })).toEqual({
      path: 'd/e/f',
      created: false,
    });
    expect(await callErr(client, 'create_directory', { path: 'a.txt' })).toMatchObject({
      code: 'ALREADY_EXISTS',
    });
    expect(await callErr(client, 'move', { source: 'a.txt', destination: 'b.txt' })).toMatchObject({
      code: 'ALREADY_EXISTS',
    });
    expect(await callOk(client, 'move', { source: 'a.txt', destination: 'd/a.txt' })).toEqual({
      source: 'a.txt',
      destination: 'd/a.txt',
      replaced: false,
    });
    expect(
      await callOk(client, 'move', { source: 'b.txt', destination: 'd/a.txt', overwrite: true }),
    ).toEqual({ source: 'b.txt', destination: 'd/a.txt', replaced: true });
    expect(await read(root, 'd/a.txt')).toBe('B');
    expect(await callErr(client, 'move', { source: 'd', destination: 'd/e/inside' })).toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    await mkdir(path.join(root, 'full'));
    await writeFile(path.join(root, 'full', 'x'), 'x');
    expect(await callErr(client, 'move', { source: 'd/e', destination: 'full', overwrite: true })).toEqual({
      code: 'CONFLICT',
      message: "cannot move 'd/e' onto 'full': the destination is a directory that is not empty",
      hint: 'Delete the destination first (delete with recursive: true), or pick another destination.',
      retryable: false,
    });
    await rm(path.join(root, 'full'), { recursive: true });
    // A link is moved and deleted as a link; what it points to stays.
    await writeFile(path.join(root, 'a.txt'), 'A again');
    expect(await callOk(client, 'move', { source: 'link', destination: 'link2' })).toMatchObject({
      destination: 'link2',
    });
    expect(await readlink(path.join(root, 'link2'))).toBe('a.txt');
    expect(await callOk(client, 'delete', { path: 'link2' })).toEqual({
      path: 'link2',
      existed: true,
      type: 'symlink',
    });
    expect(await read(root, 'a.txt')).toBe('A again');
    expect(await callErr(client, 'delete', { path: 'd' })).toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(await callOk(client, 'delete', { path: 'd', recursive: true })).toEqual({
      path: 'd',
      existed: true,
      type: 'directory',
    });
    expect(await callOk(client, 'delete', { path: 'd' })).toEqual({ path: 'd', existed: false });
    expect(await callErr(client, 'delete', { path: '.', recursive: true })).toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    expect((await readdir(root)).sort()).toEqual(['a.txt']);
  });

  it('an idempotency key makes a retried edit happen once', async () => {
    const root = await tempDir();
    await writeFile(path.join(root, 'log.txt'), 'start\n');
    const client = await connect([root], kind);
    const args = {
      path: 'log.txt',
      edits: [{ oldText: 'start\n', newText: 'start\nmore\n' }],
      idempotencyKey: 'edit-1',
    };
    const first = await client.callTool({ name: 'edit_file', arguments: args });
    const second = await client.callTool({ name: 'edit_file', arguments: args });
    expect(second.structuredContent).toEqual(first.structuredContent);
    expect(second._meta?.['keel/idempotency']).toMatchObject({ replayed: true });
    expect(await read(root, 'log.txt')).toBe('start\nmore\n');
    const reused = await callErr(client, 'edit_file', { ...args, dryRun: true });
    expect(reused.code).toBe('IDEMPOTENCY_KEY_REUSED');
  });

  it('tool annotations say what each tool does', async () => {
    const root = await tempDir();
    const client = await connect([root], kind);
    const { tools } = await client.listTools();
    const flags = Object.fromEntries(
      tools.map((t) => [
        t.name,
        [
          t.annotations?.['readOnlyHint'],
          t.annotations?.['destructiveHint'],
          t.annotations?.['idempotentHint'],
        ],
      ]),
    );
    expect(flags).toEqual({
      list_roots: [true, false, true],
      read_file: [true, false, true],
      read_files: [true, false, true],
      list_directory: [true, false, true],
      tree: [true, false, true],
      find_files: [true, false, true],
      search_text: [true, false, true],
      stat: [true, false, true],
      write_file: [false, false, true],
      edit_file: [false, false, false],
      apply_patch: [false, false, false],
      create_directory: [false, false, true],
      move: [false, true, false],
      delete: [false, true, true],
    });
  });
});

describe('whole-file edits have a size limit', () => {
  it('edit_file refuses a file over 32 MiB without reading it into memory', async () => {
    const root = await tempDir();
    await writeFile(path.join(root, 'huge.txt'), Buffer.alloc(33 * 1024 * 1024, 0x61));
    const client = await connect([root]);
    expect(
      await callErr(client, 'edit_file', { path: 'huge.txt', edits: [{ oldText: 'a', newText: 'b' }] }),
    ).toEqual({
      code: 'RESOURCE_LIMIT',
      message: `file 'huge.txt' is ${33 * 1024 * 1024} bytes, over the ${32 * 1024 * 1024}-byte limit for whole-file edits`,
      hint: 'Edit it with other tools; read_file can still read it in windows.',
      retryable: false,
    });
  });
});

describe('mkdir semantics', () => {
  it('create_directory under an existing tree keeps the existing content', async () => {
    const root = await tempDir();
    await mkdir(path.join(root, 'x'));
    await writeFile(path.join(root, 'x', 'keep.txt'), 'k');
    const client = await connect([root]);
    await callOk(client, 'create_directory', { path: 'x/y' });
    expect(await read(root, 'x/keep.txt')).toBe('k');
  });
});
