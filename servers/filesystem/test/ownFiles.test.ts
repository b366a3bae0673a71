import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { connectStdio, tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { binPath, callErr, callOk, type Client } from './helpers.js';

const execFileAsync = promisify(execFile);

/**
 * A root that holds the server's own state dir (`--state-dir ROOT/data/.keel`, as a careless config
 * does) and a config file passed to --deny-path, with ordinary files beside them:
 *   data/.keel/{cursor.key, keel.db, marker.txt}   keel.config.yaml   notes.txt   data/ok.txt
 *   link -> data/.keel    key -> data/.keel/cursor.key
 */
async function ownFilesInRoot(): Promise<{ root: string; state: string; client: Client }> {
  const root = await tempDir('keel-fs-own-');
  const state = path.join(root, 'data', '.keel');
  await mkdir(state, { recursive: true });
  await writeFile(path.join(state, 'marker.txt'), 'KEEL-STATE-MARKER\n');
  await writeFile(path.join(root, 'keel.config.yaml'), 'limits: { steps: 60 }\n');
  await writeFile(path.join(root, 'notes.txt'), 'KEEL-STATE-MARKER is a phrase in notes\n');
  await writeFile(path.join(root, 'data', 'ok.txt'), 'ok\n');
  await symlink('data/.keel', path.join(root, 'link'));
  await symlink('data/.keel/cursor.key', path.join(root, 'key'));
  const client = await connectStdio({
    command: process.execPath,
    args: [
      binPath,
      '--root',
      root,
      '--state-dir',
      state,
      '--deny-path',
      path.join(root, 'keel.config.yaml'),
      '--log-level',
      'info',
    ],
  });
  return { root, state, client };
}

describe("Keel's own files in the root are out of every tool's reach", () => {
  it('refuses every access to the state dir, the key and a denied config, however the path is spelled', async () => {
    const { root, state, client } = await ownFilesInRoot();
    // A mutating call makes the server write its database.
    await callOk(client, 'write_file', { path: 'data/new.txt', content: 'new\n', idempotencyKey: 'k1' });
    const key = await readFile(path.join(state, 'cursor.key'));
    const attacks: Array<[string, Record<string, unknown>]> = [
      ['read_file', { path: 'data/.keel/cursor.key' }],
      ['read_file', { path: 'data/../data/.keel/cursor.key' }],
      ['read_file', { path: path.join(state, 'keel.db') }],
      ['read_file', { path: 'link/cursor.key' }],
      ['read_file', { path: 'key' }],
      ['read_file', { path: 'keel.config.yaml' }],
      ['read_files', { paths: ['notes.txt', 'data/.keel/marker.txt'] }],
      ['stat', { path: 'data/.keel' }],
      ['list_directory', { path: 'data/.keel', hidden: true }],
      ['tree', { path: 'link', hidden: true }],
      ['search_text', { pattern: 'MARKER', path: 'data/.keel', hidden: true }],
      ['write_file', { path: 'data/.keel/planted.txt', content: 'x' }],
      ['write_file', { path: 'link/cursor.key', content: 'forged-key-forged-key-forged-key' }],
      ['write_file', { path: 'keel.config.yaml', content: 'limits: { steps: 6000 }\n' }],
      ['edit_file', { path: 'keel.config.yaml', edits: [{ oldText: '60', newText: '6000' }] }],
      ['apply_patch', { patch: '--- /dev/null\n+++ b/data/.keel/planted.txt\n@@ -0,0 +1,1 @@\n+x\n' }],
      ['create_directory', { path: 'data/.keel/sub' }],
      ['delete', { path: 'data/.keel/cursor.key' }],
      ['delete', { path: 'data/.keel', recursive: true }],
      ['delete', { path: 'data', recursive: true }],
      ['move', { source: 'data/.keel', destination: 'stolen' }],
      ['move', { source: 'data', destination: 'moved' }],
      ['move', { source: 'notes.txt', destination: 'data/.keel/notes.txt' }],
    ];
    const codes: string[] = [];
    for (const [tool, args] of attacks) codes.push(`${tool} ${(await callErr(client, tool, args)).code}`);
    expect(codes).toEqual(attacks.map(([tool]) => `${tool} PERMISSION_DENIED`));
    expect(await callErr(client, 'read_file', { path: 'data/.keel/cursor.key' })).toEqual({
      code: 'PERMISSION_DENIED',
      message: "path 'data/.keel/cursor.key' is one of Keel's own files",
      hint: "Keel's own files (its state, keys, configuration and task files) are off limits to every tool; work with the project's other files.",
      retryable: false,
      details: { path: 'data/.keel/cursor.key', field: 'path' },
    });
    // Nothing was planted, removed, moved or rewritten.
    expect((await readdir(state)).filter((name) => !name.startsWith('keel.db')).sort()).toEqual([
      'cursor.key',
      'marker.txt',
    ]);
    expect(await readFile(path.join(state, 'cursor.key'))).toEqual(key);
    expect(await readFile(path.join(root, 'keel.config.yaml'), 'utf8')).toBe('limits: { steps: 60 }\n');
  });

  it('hides them from listings, trees, find and search, while the files beside them show', async () => {
    const { client } = await ownFilesInRoot();
    const listed = await callOk<{ entries: Array<{ name: string }> }>(client, 'list_directory', {
      path: 'data',
      hidden: true,
    });
    expect(listed.entries.map((entry) => entry.name)).toEqual(['ok.txt']);
    const top = await callOk<{ entries: Array<{ name: string }> }>(client, 'list_directory', {
      hidden: true,
    });
    expect(top.entries.map((entry) => entry.name)).toEqual(['data', 'key', 'link', 'notes.txt']);
    const tree = await callOk<{ entries: Array<{ path: string }> }>(client, 'tree', { hidden: true });
    expect(tree.entries.map((entry) => entry.path)).toEqual([
      'data',
      'data/ok.txt',
      'key',
      'link',
      'notes.txt',
    ]);
    const found = await callOk<{ matches: Array<{ path: string }> }>(client, 'find_files', {
      pattern: '**',
      hidden: true,
    });
    expect(found.matches.map((match) => match.path)).toEqual([
      'data',
      'data/ok.txt',
      'key',
      'link',
      'notes.txt',
    ]);
    const searched = await callOk<{ matches: Array<{ path: string }> }>(client, 'search_text', {
      pattern: 'KEEL-STATE-MARKER',
      hidden: true,
    });
    expect(searched.matches.map((match) => match.path)).toEqual(['notes.txt']);
  });

  it('the benign twin: ordinary files next to them read, write, move and delete', async () => {
    const { root, client } = await ownFilesInRoot();
    expect(await callOk(client, 'read_file', { path: 'data/ok.txt' })).toMatchObject({ content: 'ok\n' });
    await callOk(client, 'write_file', { path: 'data/.keel-notes.txt', content: 'mine\n' });
    await callOk(client, 'move', { source: 'data/.keel-notes.txt', destination: 'data/notes2.txt' });
    await callOk(client, 'delete', { path: 'data/notes2.txt' });
    await callOk(client, 'edit_file', { path: 'notes.txt', edits: [{ oldText: 'phrase', newText: 'word' }] });
    expect(await readFile(path.join(root, 'notes.txt'), 'utf8')).toBe(
      'KEEL-STATE-MARKER is a word in notes\n',
    );
    expect((await readdir(path.join(root, 'data'))).sort()).toEqual(['.keel', 'ok.txt']);
  });

  it('logs the denied paths in one line at start, and creates its state private to its owner', async () => {
    const root = await tempDir('keel-fs-own-');
    const state = path.join(root, 'fresh', '.keel');
    const client = await connectStdio({
      command: process.execPath,
      args: [
        binPath,
        '--root',
        root,
        '--state-dir',
        state,
        '--deny-path',
        'nowhere.yaml',
        '--log-level',
        'info',
      ],
    });
    await callOk(client, 'write_file', { path: 'a.txt', content: 'a\n', idempotencyKey: 'k2' });
    const lines = client
      .stderr()
      .split('\n')
      .filter((line) => line.includes("Keel's own files"))
      .map((line) => JSON.parse(line) as { msg: string; paths: string[] });
    expect(lines.map((line) => [line.msg, line.paths])).toEqual([
      ["Keel's own files, denied to every tool", [state, path.resolve('nowhere.yaml')]],
    ]);
    const mode = (file: string) => (statSync(path.join(state, file)).mode & 0o777).toString(8);
    expect([mode('.'), mode('cursor.key'), mode('keel.db')]).toEqual(['700', '600', '600']);
    expect(await callErr(client, 'list_directory', { path: 'fresh/.keel' })).toMatchObject({
      code: 'PERMISSION_DENIED',
    });
  });

  it('refuses to start when a root lies inside its state dir', async () => {
    const state = await tempDir('keel-fs-state-');
    const root = path.join(state, 'work');
    await mkdir(root);
    const started = execFileAsync(process.execPath, [binPath, '--root', root, '--state-dir', state]);
    // Stdin closed: a server that did start would serve nothing and exit 0 rather than wait.
    started.child.stdin?.end();
    const run = await started.then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => ({ code: error.code, stderr: error.stderr }),
    );
    const logged = JSON.parse(run.stderr.trim().split('\n').at(-1)!) as Record<string, unknown>;
    expect([run.code, logged['msg'], logged['code']]).toEqual([
      2,
      `root '${root}' lies inside '${state}', which holds Keel's own files`,
      'INVALID_ARGUMENT',
    ]);
  });
});
