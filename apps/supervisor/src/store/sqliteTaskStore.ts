import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { TaskStore } from './taskStore.js';
import { decodeText } from './rows.js';
import { runSync, type Executor, type Statement, type Work } from './statements.js';
import { createStoreCore } from './storeCore.js';
import { aggregateTaskSummaries, installTaskSummaries } from './sqliteSummaries.js';

const schema = `
CREATE TABLE IF NOT EXISTS tasks (
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
`;

/**
 * The embedded task store: one SQLite file (WAL) in the state dir. Every statement is prepared
 * once and kept; work that must be atomic runs in one IMMEDIATE transaction (the database's write
 * lock), so several `keel` processes on one state dir keep one unbroken event chain.
 */
export function createSqliteTaskStore(stateDir: string): TaskStore {
  mkdirSync(stateDir, { recursive: true });
  const db = new Database(path.join(stateDir, 'tasks.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  db.exec(schema);
  installTaskSummaries(db);

  const prepared = new Map<string, Database.Statement<unknown[], unknown>>();
  const answer = ({ mode, sql, values }: Statement): unknown => {
    let statement = prepared.get(sql);
    if (statement === undefined) {
      statement = db.prepare<unknown[], unknown>(sql);
      prepared.set(sql, statement);
    }
    if (mode === 'all') return statement.all(...values);
    if (mode === 'get') return statement.get(...values);
    return statement.run(...values).changes;
  };
  const inTransaction = db.transaction((work: Work<unknown>) => runSync(work, answer));
  const executor: Executor = {
    execute: async (work) => runSync(work, answer),
    transaction: async <T>(work: Work<T>) => inTransaction.immediate(work) as T,
  };
  const core = createStoreCore(
    {
      decode: decodeText,
      bool: (value) => (value ? 1 : 0),
      locks: null,
      chain: { head: 'SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1', advance: null },
      summaries: 'task_summaries',
    },
    executor,
  );

  return {
    ...core,
    async close() {
      db.close();
    },
    async aggregateTaskSummaries(filter = {}) {
      return aggregateTaskSummaries(db, filter);
    },
  };
}
