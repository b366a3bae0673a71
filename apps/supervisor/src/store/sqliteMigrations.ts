import Database from 'better-sqlite3';
import { enableWal } from '@keel/kit';
import { KeelError } from '@keel/kit/core';
import { splitRequest } from './messages.js';
import { storedResult } from './toolResults.js';

/**
 * A change to the SQLite task store's schema: SQL, or a function for what SQL alone cannot do
 * (hashing existing rows, say). Never edit one that has shipped; add the next.
 */
export type SqliteMigration = string | ((db: Database.Database) => void);

/** A row of `task_summaries` computed from a task row named `row` (`NEW` in a trigger, `tasks` in a backfill). */
const v1SummaryOf = (row: string) => `
  INSERT OR REPLACE INTO task_summaries
  SELECT ${row}.id, ${row}.type, ${row}.mode, ${row}.status, ${row}.created_at,
    CASE WHEN ${row}.ended_at IS NULL THEN NULL
      ELSE round((julianday(${row}.ended_at) - julianday(${row}.created_at)) * 86400000.0) END,
    coalesce(json_extract(${row}.run, '$.steps'), 0),
    coalesce(json_extract(${row}.run, '$.tokens.input'), 0),
    coalesce(json_extract(${row}.run, '$.tokens.output'), 0),
    coalesce(json_extract(${row}.run, '$.costUsd'), 0),
    coalesce(json_extract(${row}.run, '$.approvalsAsked'), 0),
    coalesce(json_array_length(${row}.run, '$.toolCalls'), 0)`;

/** Version 4's summary row: version 1's, and the input tokens read from a provider's prompt cache. */
const v4SummaryOf = (row: string) => `${v1SummaryOf(row)},
    coalesce(json_extract(${row}.run, '$.tokens.cachedInput'), 0)`;

/**
 * The SQLite task store's schema, one migration per change, in order; `PRAGMA user_version` counts
 * how many a database has. Version 1 is the schema stores had before versions existed: it creates
 * only what is missing, so a database made then (user_version 0, tables in place) upgrades in place.
 *
 * `task_summaries` is a compact row per finished task, kept by triggers on `tasks.run`, so `keel
 * stats` reads a few numbers per task instead of parsing each run record in JavaScript. Triggers
 * rather than code in the store's writes: whatever writes a run record — this store, another
 * process, a migration — keeps the summary current. Clustered by creation time (a task's never
 * changes), so a window is one sequential range scan.
 */
export const sqliteMigrations: readonly SqliteMigration[] = [
  `CREATE TABLE IF NOT EXISTS tasks (
  id TEXT PRIMARY KEY,
  type TEXT NOT NULL,
  title TEXT NOT NULL,
  mode TEXT NOT NULL,
  status TEXT NOT NULL,
  created_at TEXT NOT NULL,
  ended_at TEXT,
  config_hash TEXT NOT NULL,
  spec TEXT NOT NULL,
  starting_state TEXT,
  run TEXT
);
CREATE INDEX IF NOT EXISTS tasks_created ON tasks (created_at);
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY,
  task_id TEXT NOT NULL,
  at TEXT NOT NULL,
  type TEXT NOT NULL,
  data TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_task ON events (task_id, seq);
CREATE TABLE IF NOT EXISTS model_calls (
  id INTEGER PRIMARY KEY,
  task_id TEXT NOT NULL,
  step INTEGER NOT NULL,
  agent TEXT NOT NULL,
  provider TEXT NOT NULL,
  requested_model TEXT NOT NULL,
  response_model TEXT,
  system_sha256 TEXT NOT NULL,
  request TEXT,
  raw TEXT,
  reply TEXT,
  reserved_input_tokens INTEGER NOT NULL,
  reserved_output_tokens INTEGER NOT NULL,
  input_tokens INTEGER NOT NULL,
  output_tokens INTEGER NOT NULL,
  cost_usd REAL NOT NULL,
  latency_ms REAL NOT NULL,
  started_at TEXT NOT NULL,
  error TEXT,
  purged_at TEXT
);
CREATE INDEX IF NOT EXISTS model_calls_task ON model_calls (task_id, id);
CREATE TABLE IF NOT EXISTS tool_calls (
  id INTEGER PRIMARY KEY,
  task_id TEXT NOT NULL,
  step INTEGER NOT NULL,
  call_index INTEGER NOT NULL,
  agent TEXT NOT NULL,
  server TEXT NOT NULL,
  tool TEXT NOT NULL,
  idempotency_key TEXT,
  arguments TEXT,
  result TEXT,
  result_bytes INTEGER NOT NULL,
  latency_ms REAL NOT NULL,
  outcome TEXT NOT NULL,
  error_code TEXT,
  irreversible INTEGER NOT NULL,
  effect TEXT,
  started_at TEXT NOT NULL,
  purged_at TEXT
);
CREATE INDEX IF NOT EXISTS tool_calls_task ON tool_calls (task_id, id);
CREATE TABLE IF NOT EXISTS approvals (
  id TEXT PRIMARY KEY,
  task_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  status TEXT NOT NULL,
  agent TEXT NOT NULL,
  step INTEGER NOT NULL,
  call_index INTEGER NOT NULL,
  server TEXT,
  tool TEXT,
  args_sha256 TEXT,
  arguments TEXT,
  reasons TEXT NOT NULL,
  summary TEXT NOT NULL,
  requested_at TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  decided_at TEXT,
  decided_by TEXT,
  decision_reason TEXT,
  decision TEXT,
  consumed_by TEXT
);
CREATE INDEX IF NOT EXISTS approvals_task ON approvals (task_id, requested_at);
CREATE TABLE IF NOT EXISTS task_control (
  task_id TEXT PRIMARY KEY,
  owner TEXT,
  kill_requested_at TEXT
);
CREATE TABLE IF NOT EXISTS control (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS task_summaries (
  task_id TEXT NOT NULL,
  type TEXT NOT NULL,
  mode TEXT NOT NULL,
  status TEXT NOT NULL,
  created_at TEXT NOT NULL,
  latency_ms REAL,
  steps INTEGER NOT NULL,
  input_tokens INTEGER NOT NULL,
  output_tokens INTEGER NOT NULL,
  cost_usd REAL NOT NULL,
  approvals_asked INTEGER NOT NULL,
  tool_calls INTEGER NOT NULL,
  PRIMARY KEY (created_at, task_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS task_summaries_type_created ON task_summaries (type, created_at, status, latency_ms);
CREATE TRIGGER IF NOT EXISTS task_summaries_insert AFTER INSERT ON tasks WHEN NEW.run IS NOT NULL
BEGIN ${v1SummaryOf('NEW')}; END;
CREATE TRIGGER IF NOT EXISTS task_summaries_update AFTER UPDATE OF run, status, ended_at ON tasks
WHEN NEW.run IS NOT NULL
BEGIN ${v1SummaryOf('NEW')}; END;
${v1SummaryOf('tasks')} FROM tasks WHERE tasks.run IS NOT NULL;`,
  // 2: fencing. Ownership carries an epoch (claims and kills move it on; owner_epoch is the epoch
  // the present owner record was claimed at), and a step's model calls are numbered tries, each
  // recorded once. Existing calls are numbered in the order they were recorded.
  `ALTER TABLE task_control ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE task_control ADD COLUMN owner_epoch INTEGER;
UPDATE task_control SET owner_epoch = 0 WHERE owner IS NOT NULL AND owner <> 'null';
ALTER TABLE model_calls ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1;
UPDATE model_calls SET attempt = numbered.attempt
  FROM (SELECT id, row_number() OVER (PARTITION BY task_id, step ORDER BY id) AS attempt FROM model_calls) AS numbered
  WHERE model_calls.id = numbered.id AND numbered.attempt > 1;
CREATE UNIQUE INDEX model_calls_attempt ON model_calls (task_id, step, attempt);`,
  // 3: a message store that grows linearly (store/messages.ts). Each request's messages and tool
  // list move to message_blobs, once per task; the request row keeps their references.
  (db) => {
    db.exec(`CREATE TABLE message_blobs (
  task_id TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  body TEXT NOT NULL,
  refs INTEGER NOT NULL,
  PRIMARY KEY (task_id, sha256)
) WITHOUT ROWID;`);
    const upsert = db.prepare(
      `INSERT INTO message_blobs (task_id, sha256, body, refs) VALUES (?, ?, ?, 1)
       ON CONFLICT (task_id, sha256) DO UPDATE SET refs = refs + 1`,
    );
    const update = db.prepare('UPDATE model_calls SET request = ? WHERE id = ?');
    const page = db.prepare(
      'SELECT id, task_id, request FROM model_calls WHERE id > ? AND request IS NOT NULL ORDER BY id LIMIT 100',
    );
    // In pages: memory stays bounded, and no statement runs while another is being read.
    for (let after = 0; ;) {
      const rows = page.all(after) as Array<{ id: number; task_id: string; request: string }>;
      if (rows.length === 0) break;
      for (const row of rows) {
        const { stored, blobs } = splitRequest(JSON.parse(row.request));
        after = row.id;
        if (blobs.length === 0) continue;
        for (const blob of blobs) upsert.run(row.task_id, blob.sha256, blob.body);
        update.run(JSON.stringify(stored), row.id);
      }
    }
  },
  // 4: the cached share of input in `keel stats`. Summaries gain the run record's cached input
  // tokens (0 where none was reported); the triggers write it from now on.
  `ALTER TABLE task_summaries ADD COLUMN cached_input_tokens INTEGER NOT NULL DEFAULT 0;
DROP TRIGGER task_summaries_insert;
DROP TRIGGER task_summaries_update;
CREATE TRIGGER task_summaries_insert AFTER INSERT ON tasks WHEN NEW.run IS NOT NULL
BEGIN ${v4SummaryOf('NEW')}; END;
CREATE TRIGGER task_summaries_update AFTER UPDATE OF run, status, ended_at ON tasks
WHEN NEW.run IS NOT NULL
BEGIN ${v4SummaryOf('NEW')}; END;
UPDATE task_summaries SET cached_input_tokens = coalesce(
  (SELECT json_extract(tasks.run, '$.tokens.cachedInput') FROM tasks WHERE tasks.id = task_summaries.task_id), 0);`,
  // 5: a tool result's text stored once (store/toolResults.ts): where it contains a string of the
  // structured result, only what surrounds it is kept. In pages, as migration 3.
  (db) => {
    const update = db.prepare('UPDATE tool_calls SET result = ? WHERE id = ?');
    const page = db.prepare(
      'SELECT id, result FROM tool_calls WHERE id > ? AND result IS NOT NULL ORDER BY id LIMIT 100',
    );
    for (let after = 0; ;) {
      const rows = page.all(after) as Array<{ id: number; result: string }>;
      if (rows.length === 0) break;
      for (const row of rows) {
        after = row.id;
        const result: unknown = JSON.parse(row.result);
        const stored = storedResult(result);
        if (stored !== result) update.run(JSON.stringify(stored), row.id);
      }
    }
  },
];

/** Where a migration started and ended: `from` is the version found under the write lock. */
export interface MigrationResult {
  from: number;
  to: number;
}

function versionOf(db: Database.Database, known: number): number {
  const found = db.pragma('user_version', { simple: true }) as number;
  if (found > known)
    throw new KeelError(
      'PRECONDITION_FAILED',
      `the task store ${db.name} has schema version ${found}; this keel knows versions up to ${known}`,
      { hint: 'a newer keel wrote to it: run that version (or newer) on this state dir' },
    );
  return found;
}

/**
 * Brings a database to the newest schema. A database already there costs one read and takes no
 * lock; otherwise {@link applyMigrations}. A database newer than this code is refused rather than
 * written to.
 */
export function migrateSqlite(
  db: Database.Database,
  migrations: readonly SqliteMigration[] = sqliteMigrations,
): MigrationResult {
  const to = migrations.length;
  return versionOf(db, to) === to ? { from: to, to } : applyMigrations(db, migrations);
}

/**
 * Applies the pending migrations in one IMMEDIATE transaction: a failure leaves the database as it
 * was, and two processes opening one file at once queue on the write lock. The version is read
 * under that lock, so whoever comes second finds the work done and applies nothing twice.
 */
export function applyMigrations(
  db: Database.Database,
  migrations: readonly SqliteMigration[] = sqliteMigrations,
): MigrationResult {
  const to = migrations.length;
  const apply = db.transaction(() => {
    const from = versionOf(db, to);
    for (const migration of migrations.slice(from)) {
      if (typeof migration === 'string') db.exec(migration);
      else migration(db);
    }
    db.pragma(`user_version = ${to}`);
    return from;
  });
  return { from: apply.immediate(), to };
}

/**
 * Opens (creating if need be) a task store's SQLite file: WAL, a busy timeout set before anything
 * that may wait for a lock, and the schema migrated.
 */
export function openSqliteDatabase(file: string): { db: Database.Database; migration: MigrationResult } {
  const db = new Database(file);
  try {
    db.pragma('busy_timeout = 5000');
    // Several processes opening a new or old store at once: the first switches it to WAL, the
    // others retry while it does (the switch does not wait out the busy timeout).
    enableWal(db);
    db.pragma('synchronous = NORMAL');
    return { db, migration: migrateSqlite(db) };
  } catch (error) {
    db.close();
    throw error;
  }
}
