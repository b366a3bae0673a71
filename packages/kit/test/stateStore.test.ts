import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSqliteStateStore, type StateStore } from '../src/state/stateStore.js';
import { openStateDatabase, type StateDatabase } from '../src/stateDir.js';

let dir: string;
let state: StateDatabase;
let clock: number;
let store: StateStore;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'keel-state-'));
  state = openStateDatabase(dir);
  clock = 1_000;
  store = createSqliteStateStore(state.db, 'deploy', { now: () => clock });
});
afterEach(async () => {
  state.close();
  await rm(dir, { recursive: true, force: true });
});

describe('sqlite state store', () => {
  it('puts, gets and versions a value', async () => {
    expect(await store.get('plan/a')).toBeUndefined();
    expect(await store.put('plan/a', { n: 1 })).toEqual({
      ok: true,
      entry: { key: 'plan/a', value: { n: 1 }, version: 1, updatedAt: 1000, expiresAt: null },
    });
    clock = 2_000;
    await store.put('plan/a', { n: 2 });
    expect(await store.get('plan/a')).toEqual({
      key: 'plan/a',
      value: { n: 2 },
      version: 2,
      updatedAt: 2000,
      expiresAt: null,
    });
  });

  it('refuses a write whose version precondition fails, naming what is there', async () => {
    expect((await store.put('lock/x', 'me', { ifVersion: 0 })).ok).toBe(true);
    expect(await store.put('lock/x', 'you', { ifVersion: 0 })).toEqual({
      ok: false,
      key: 'lock/x',
      current: { key: 'lock/x', value: 'me', version: 1, updatedAt: 1000, expiresAt: null },
    });
    expect((await store.put('lock/x', 'me again', { ifVersion: 1 })).ok).toBe(true);
    expect((await store.delete('lock/x', { ifVersion: 1 })).ok).toBe(false);
    expect(await store.delete('lock/x', { ifVersion: 2 })).toEqual({ ok: true });
    expect(await store.get('lock/x')).toBeUndefined();
  });

  it('treats an expired entry as absent, and never reuses its version', async () => {
    await store.put('lease', 'a', { ttlMs: 500 });
    clock = 1_499;
    expect((await store.get('lease'))?.value).toBe('a');
    clock = 1_500;
    expect(await store.get('lease')).toBeUndefined();
    expect(await store.list({ prefix: 'lea', limit: 10 })).toEqual([]);
    const taken = await store.put('lease', 'b', { ifVersion: 0, ttlMs: 500 });
    expect(taken).toEqual({
      ok: true,
      entry: { key: 'lease', value: 'b', version: 2, updatedAt: 1500, expiresAt: 2000 },
    });
  });

  it('commits several writes all or none', async () => {
    await store.put('env/s', { generation: 1 });
    const lost = await store.commit([
      { kind: 'put', key: 'release/s/r1', value: { id: 'r1' }, ifVersion: 0 },
      { kind: 'put', key: 'env/s', value: { generation: 2 }, ifVersion: 7 },
    ]);
    expect(lost).toEqual({
      ok: false,
      key: 'env/s',
      current: { key: 'env/s', value: { generation: 1 }, version: 1, updatedAt: 1000, expiresAt: null },
    });
    expect(await store.get('release/s/r1')).toBeUndefined();
    expect(
      await store.commit([
        { kind: 'put', key: 'release/s/r1', value: { id: 'r1' }, ifVersion: 0 },
        { kind: 'put', key: 'env/s', value: { generation: 2 }, ifVersion: 1 },
        { kind: 'delete', key: 'missing' },
      ]),
    ).toEqual({ ok: true, versions: { 'release/s/r1': 1, 'env/s': 2 } });
  });

  it('lists by prefix in key order with a limit and a position', async () => {
    for (const key of ['r/b', 'r/a', 'r/c', 'rx', 'q']) await store.put(key, key);
    const keys = async (options: { prefix: string; limit: number; after?: string }) =>
      (await store.list(options)).map((entry) => entry.key);
    expect(await keys({ prefix: 'r/', limit: 10 })).toEqual(['r/a', 'r/b', 'r/c']);
    expect(await keys({ prefix: 'r/', limit: 2 })).toEqual(['r/a', 'r/b']);
    expect(await keys({ prefix: 'r/', limit: 2, after: 'r/b' })).toEqual(['r/c']);
  });

  it('keeps namespaces apart in one database', async () => {
    const other = createSqliteStateStore(state.db, 'test-runner', { now: () => clock });
    await store.put('k', 'deploy');
    await other.put('k', 'runner');
    expect((await store.get('k'))?.value).toBe('deploy');
    expect((await other.get('k'))?.value).toBe('runner');
  });

  it('rejects keys it cannot store faithfully', async () => {
    await expect(store.get('')).rejects.toThrow(TypeError);
    await expect(store.put('a\0b', 1)).rejects.toThrow(TypeError);
  });

  it('lets exactly one of several processes take a free key', async () => {
    // Each child uses the built kit, the code a server process runs.
    const kit = new URL('../dist/index.js', import.meta.url).href;
    const script = `const { openStateDatabase, createSqliteStateStore } = await import(${JSON.stringify(kit)});
      const state = openStateDatabase(process.argv[1]);
      const store = createSqliteStateStore(state.db, 'race');
      const taken = await store.put('lock', process.argv[2], { ifVersion: 0 });
      process.stdout.write(taken.ok ? 'won' : 'lost');
      state.close();`;
    const runs = Array.from({ length: 4 }, (_, index) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script, dir, `p${index}`], {
        cwd: path.dirname(fileURLToPath(import.meta.url)),
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      return new Promise<string>((resolve) => child.on('close', () => resolve(out.trim())));
    });
    const answers = await Promise.all(runs);
    expect(answers.filter((answer) => answer === 'won')).toHaveLength(1);
    expect(answers.filter((answer) => answer === 'lost')).toHaveLength(3);
    const reader = createSqliteStateStore(state.db, 'race');
    const winner = await reader.get<string>('lock');
    expect(answers[Number(winner?.value.slice(1))]).toBe('won');
  });
});
