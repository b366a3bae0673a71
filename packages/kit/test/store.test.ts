import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createSqliteIdempotencyStore } from '../src/idempotency/sqliteStore.js';
import { idempotencyStoreConformance } from '../src/conformance/index.js';
import { openStateDatabase, openStateDir, type StateDatabase } from '../src/stateDir.js';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

let dir: string;
let other: string;
let state: StateDatabase;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'keel-store-'));
  other = await mkdtemp(path.join(tmpdir(), 'keel-store-other-'));
  state = openStateDatabase(dir);
});
afterEach(async () => {
  state.close();
  await rm(dir, { recursive: true, force: true });
  await rm(other, { recursive: true, force: true });
});

idempotencyStoreConformance(
  { describe, it, expect },
  {
    async open() {
      const dir = await mkdtemp(path.join(tmpdir(), 'keel-store-conformance-'));
      const opened: StateDatabase[] = [openStateDatabase(dir)];
      return {
        subject: createSqliteIdempotencyStore(opened[0]!.db),
        async another() {
          const second = openStateDatabase(dir);
          opened.push(second);
          return createSqliteIdempotencyStore(second.db);
        },
        async close() {
          for (const state of opened) state.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  },
);

it('the state dir keeps one cursor secret across opens', async () => {
  const again = openStateDatabase(dir);
  expect(again.cursorSecret.equals(state.cursorSecret)).toBe(true);
  expect(again.cursorSecret.length).toBe(32);
  again.close();
});

describe('the SQLite store on a file an older Keel wrote', () => {
  it('drops the expiry index every transaction paid for, and still reaps what expired', async () => {
    const old = openStateDatabase(other);
    old.db.exec(`CREATE TABLE idempotency (
      scope TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
      state TEXT NOT NULL CHECK (state IN ('in_progress', 'completed')), owner TEXT, token TEXT,
      lease_expires_at INTEGER, result TEXT, created_at INTEGER NOT NULL, completed_at INTEGER,
      expires_at INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 1, PRIMARY KEY (scope, key)
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_expires ON idempotency (expires_at);
    INSERT INTO idempotency (scope, key, fingerprint, state, result, created_at, completed_at, expires_at)
      VALUES ('s', 'gone', 'f', 'completed', '{}', 1, 1, 2), ('s', 'kept', 'f', 'completed', '{}', 1, 1, 9e15);`);
    old.close();
    const reopened = openStateDatabase(other);
    try {
      const store = createSqliteIdempotencyStore(reopened.db);
      const indexes = reopened.db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'idempotency'")
        .all();
      expect(indexes).toEqual([]);
      // Opening reaped the expired record; the other is still answered.
      expect([await store.get('s', 'gone'), (await store.get('s', 'kept'))?.state]).toEqual([
        undefined,
        'completed',
      ]);
    } finally {
      reopened.close();
    }
  });
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

describe("the SQLite store's identity", () => {
  it('is the same for every opener of one file, and new for a new file', async () => {
    const first = createSqliteIdempotencyStore(state.db).identity;
    expect(first).toMatch(/^[0-9a-f-]{36}$/);
    const again = openStateDatabase(dir);
    try {
      expect(createSqliteIdempotencyStore(again.db).identity).toBe(first);
    } finally {
      again.close();
    }
    // A wiped state dir is a new store: nothing it remembers can vouch for the old one's keys.
    const elsewhere = openStateDatabase(other);
    try {
      const second = createSqliteIdempotencyStore(elsewhere.db).identity;
      expect(second).toMatch(/^[0-9a-f-]{36}$/);
      expect(second).not.toBe(first);
    } finally {
      elsewhere.close();
    }
  });
});
