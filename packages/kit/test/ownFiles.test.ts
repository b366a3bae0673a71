import { closeSync, constants, statSync } from 'node:fs';
import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPathJail, type PathJail } from '../src/jail.js';
import { openStateDir } from '../src/stateDir.js';

// A root that holds a server's state dir, as `keel init` once configured it:
//   root/.keel/cursor.key   root/.keel/keel.db      (the state dir, denied)
//   root/keel.config.yaml                           (denied by --deny-path)
//   root/notes.txt  root/.keelish/x  root/.keel-other (ordinary files beside them)
//   root/link -> .keel      root/key -> .keel/cursor.key      root/sub/
let base: string;
let root: string;
let state: string;
let jail: PathJail;

beforeAll(async () => {
  base = await realpath(await mkdtemp(path.join(tmpdir(), 'keel-own-')));
  root = path.join(base, 'root');
  state = path.join(root, '.keel');
  await mkdir(state, { recursive: true });
  await mkdir(path.join(root, 'sub'));
  await mkdir(path.join(root, '.keelish'));
  await writeFile(path.join(state, 'cursor.key'), 'k'.repeat(32));
  await writeFile(path.join(root, 'keel.config.yaml'), 'limits: {}\n');
  await writeFile(path.join(root, 'notes.txt'), 'notes\n');
  await writeFile(path.join(root, '.keelish', 'x'), 'x\n');
  await writeFile(path.join(root, '.keel-other'), 'o\n');
  await symlink('.keel', path.join(root, 'link'));
  await symlink('.keel/cursor.key', path.join(root, 'key'));
  jail = await createPathJail([root], { deny: [state, path.join(root, 'keel.config.yaml')] });
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe("Keel's own files inside a root", () => {
  const attempts: Array<[string, () => string]> = [
    ['the state dir', () => '.keel'],
    ['the cursor key', () => '.keel/cursor.key'],
    ['a new file in the state dir', () => '.keel/planted.txt'],
    ['through ..', () => 'sub/../.keel/cursor.key'],
    ['absolute', () => path.join(state, 'keel.db')],
    ['through a directory symlink', () => 'link/cursor.key'],
    ['through a file symlink', () => 'key'],
    ['a denied config file', () => 'keel.config.yaml'],
    ['a file URI', () => `file://${path.join(state, 'cursor.key')}`],
  ];
  it.each(attempts)('%s is refused as PERMISSION_DENIED', async (_name, input) => {
    const result = await jail.resolve(input());
    expect(result.ok ? 'resolved' : result.error.code).toBe('PERMISSION_DENIED');
  });

  it('says why, and how to go on', async () => {
    const result = await jail.resolve('.keel/cursor.key');
    expect(result).toEqual({
      ok: false,
      error: {
        code: 'PERMISSION_DENIED',
        message: "path '.keel/cursor.key' is one of Keel's own files",
        hint: "Keel's own files (its state, keys, configuration and task files) are off limits to every tool; work with the project's other files.",
        retryable: false,
        details: { path: '.keel/cursor.key' },
      },
    });
  });

  it.each([
    ['notes.txt', 'notes.txt'],
    ['a name that shares the prefix', '.keel-other'],
    ['a directory that shares the prefix', '.keelish/x'],
    ['the root itself', '.'],
  ])('the benign twin, %s, resolves', async (_name, input) => {
    const result = await jail.resolve(input);
    expect(result.ok).toBe(true);
  });

  it('a real path handed to open is refused before anything is opened or created', async () => {
    const planted = path.join(state, 'planted-by-open.txt');
    const opened = await jail.open(planted, constants.O_WRONLY | constants.O_CREAT);
    expect(opened.ok ? 'opened' : opened.error.code).toBe('PERMISSION_DENIED');
    expect(statSync(planted, { throwIfNoEntry: false })).toBeUndefined();
    const sync = jail.openSync(path.join(state, 'cursor.key'), constants.O_RDONLY);
    if (sync.ok) closeSync(sync.value);
    expect(sync.ok ? 'opened' : sync.error.code).toBe('PERMISSION_DENIED');
  });

  it('names what a tree holds, and a narrowed jail keeps the deny', async () => {
    expect(jail.denied).toEqual([state, path.join(root, 'keel.config.yaml')]);
    expect(jail.deniedWithin(root)).toEqual([state, path.join(root, 'keel.config.yaml')]);
    expect(jail.deniedWithin(path.join(root, 'sub'))).toEqual([]);
    expect([jail.isDenied(path.join(state, 'x')), jail.isDenied(path.join(root, '.keel-other'))]).toEqual([
      true,
      false,
    ]);
    const narrowed = await jail.narrow([root]);
    const result = await narrowed.resolve('.keel/cursor.key');
    expect(result.ok ? 'resolved' : result.error.code).toBe('PERMISSION_DENIED');
  });

  it('refuses a root that lies inside a denied path', async () => {
    await expect(createPathJail([path.join(state)], { deny: [state] })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: `root '${state}' lies inside '${state}', which holds Keel's own files`,
    });
    await expect(createPathJail([root], { deny: [base] })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
  });
});

describe('state files are private to their owner', () => {
  it('creates the state dir 0700 and the key, database, WAL and shared-memory files 0600', async () => {
    const dir = path.join(base, 'fresh-state', 'nested');
    const opened = openStateDir(dir);
    try {
      opened.database().exec('CREATE TABLE t (x); INSERT INTO t VALUES (1)');
      const mode = (file: string) => (statSync(path.join(dir, file)).mode & 0o777).toString(8);
      expect({
        dir: (statSync(dir).mode & 0o777).toString(8),
        key: mode('cursor.key'),
        db: mode('keel.db'),
        wal: mode('keel.db-wal'),
        shm: mode('keel.db-shm'),
      }).toEqual({ dir: '700', key: '600', db: '600', wal: '600', shm: '600' });
    } finally {
      opened.close();
    }
  });

  it('tightens a database an older version left readable by others', async () => {
    const dir = path.join(base, 'old-state');
    await mkdir(dir, { mode: 0o700 });
    await writeFile(path.join(dir, 'keel.db'), '', { mode: 0o644 });
    const opened = openStateDir(dir);
    try {
      opened.database();
      expect((statSync(path.join(dir, 'keel.db')).mode & 0o777).toString(8)).toBe('600');
    } finally {
      opened.close();
    }
  });
});
