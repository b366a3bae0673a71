import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSqliteIdempotencyStore } from '../src/idempotency/sqliteStore.js';
import type { IdempotencyStore } from '../src/idempotency/store.js';
import { openStateDatabase, openStateDir, type StateDatabase } from '../src/stateDir.js';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

let dir: string;
let other: string;
let state: StateDatabase;
let store: IdempotencyStore;
const base = { scope: 'srv', key: 'k1', fingerprint: 'f1', owner: 'me', leaseMs: 1000, ttlMs: 10_000 };

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'keel-store-'));
  other = await mkdtemp(path.join(tmpdir(), 'keel-store-other-'));
  state = openStateDatabase(dir);
  store = createSqliteIdempotencyStore(state.db);
});
afterEach(async () => {
  state.close();
  await rm(dir, { recursive: true, force: true });
  await rm(other, { recursive: true, force: true });
});

describe('sqlite idempotency store', () => {
  it('claims once, then replays the completed result', () => {
    const first = store.claim({ ...base, now: 1000 });
    expect(first.kind).toBe('claimed');
    if (first.kind !== 'claimed') return;
    expect(store.claim({ ...base, now: 1001 })).toEqual({
      kind: 'in_progress',
      owner: 'me',
      leaseExpiresAt: 2000,
    });
    expect(store.complete('srv', 'k1', first.token, { answer: 42 })).toBe(true);
    const again = store.claim({ ...base, owner: 'other' });
    expect(again).toMatchObject({ kind: 'completed', result: { answer: 42 } });
  });

  it('refuses the same key with another fingerprint', () => {
    store.claim(base);
    expect(store.claim({ ...base, fingerprint: 'f2' })).toEqual({
      kind: 'conflict',
      storedFingerprint: 'f1',
    });
  });

  it('keeps scopes apart', () => {
    expect(store.claim(base).kind).toBe('claimed');
    expect(store.claim({ ...base, scope: 'other-server' }).kind).toBe('claimed');
  });

  it('recovers a claim whose lease expired, once', () => {
    store.claim({ ...base, now: 1000 });
    const recovered = store.claim({ ...base, owner: 'second', now: 2500 });
    expect(recovered).toMatchObject({ kind: 'recovered', previousOwner: 'me', attempts: 2 });
    expect(store.claim({ ...base, owner: 'third', now: 2600 })).toEqual({
      kind: 'in_progress',
      owner: 'second',
      leaseExpiresAt: 3500,
    });
  });

  it('a renewed lease is not recovered', () => {
    const claim = store.claim(base);
    if (claim.kind !== 'claimed') throw new Error(claim.kind);
    expect(store.renew('srv', 'k1', claim.token, 60_000)).toBe(true);
    expect(store.claim({ ...base, owner: 'other', now: Date.now() + 30_000 }).kind).toBe('in_progress');
    expect(store.renew('srv', 'k1', 'not-the-token', 60_000)).toBe(false);
  });

  it('release lets a retry run again', () => {
    const claim = store.claim(base);
    if (claim.kind !== 'claimed') throw new Error(claim.kind);
    store.release('srv', 'k1', claim.token);
    expect(store.claim(base).kind).toBe('claimed');
  });

  it('completed records expire after the TTL and are reaped', () => {
    const claim = store.claim({ ...base, ttlMs: 50 });
    if (claim.kind !== 'claimed') throw new Error(claim.kind);
    store.complete('srv', 'k1', claim.token, 'r');
    const claim2 = store.claim({ ...base, key: 'k2', ttlMs: 1_000_000 });
    if (claim2.kind !== 'claimed') throw new Error(claim2.kind);
    store.complete('srv', 'k2', claim2.token, 'r2');
    expect(store.reap(Date.now() + 10_000)).toBe(1);
    expect(store.get('srv', 'k1')).toBeUndefined();
    expect(store.get('srv', 'k2')).toMatchObject({ state: 'completed', result: 'r2' });
    // An expired key is free again even before the reaper runs.
    const claim3 = store.claim({ ...base, key: 'k3', ttlMs: 1 });
    if (claim3.kind !== 'claimed') throw new Error(claim3.kind);
    store.complete('srv', 'k3', claim3.token, 'old');
    expect(store.claim({ ...base, key: 'k3', now: Date.now() + 1000 }).kind).toBe('claimed');
  });

  it('two connections to one file never both win a key', () => {
    const other = openStateDatabase(dir);
    try {
      const otherStore = createSqliteIdempotencyStore(other.db);
      const results = [];
      for (let i = 0; i < 200; i++) {
        const key = `race-${i}`;
        const a = (i % 2 === 0 ? store : otherStore).claim({ ...base, key, owner: 'a' });
        const b = (i % 2 === 0 ? otherStore : store).claim({ ...base, key, owner: 'b' });
        results.push([a.kind, b.kind].join('/'));
      }
      expect(new Set(results)).toEqual(new Set(['claimed/in_progress']));
    } finally {
      other.close();
    }
  });
});

it('the state dir keeps one cursor secret across opens', async () => {
  const again = openStateDatabase(dir);
  expect(again.cursorSecret.equals(state.cursorSecret)).toBe(true);
  expect(again.cursorSecret.length).toBe(32);
  again.close();
});

describe('several processes opening one state dir', () => {
  it('a second opener waits for WAL to be switched on instead of failing with "database is locked"', async () => {
    // Another process creates the file in rollback-journal mode and holds a write transaction for a while.
    const holder = spawn(
      process.execPath,
      [
        '-e',
        `const Database = require('better-sqlite3');
         const db = new Database(process.argv[1]);
         db.exec('CREATE TABLE t (x)');
         db.exec('BEGIN IMMEDIATE');
         db.exec('INSERT INTO t VALUES (1)');
         process.stdout.write('locked\\n');
         setTimeout(() => { db.exec('COMMIT'); db.close(); }, 300);`,
        path.join(other, 'keel.db'),
      ],
      { cwd: path.dirname(fileURLToPath(import.meta.url)), stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve) => holder.stdout.once('data', () => resolve()));
    const state = openStateDir(other);
    try {
      expect(state.database().pragma('journal_mode', { simple: true })).toBe('wal');
    } finally {
      state.close();
    }
    await new Promise((resolve) => holder.once('exit', resolve));
  });
});
