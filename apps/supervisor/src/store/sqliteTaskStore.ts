import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import path from 'node:path';
import type Database from 'better-sqlite3';
import type { TaskAggregate, TaskStore, TaskSummaryFilter } from './taskStore.js';
import { aggregateFromRow, decodeText } from './rows.js';
import { openSqliteDatabase } from './sqliteMigrations.js';
import { runSync, type Executor, type Statement, type Work } from './statements.js';
import { createStoreCore, endedTasks } from './storeCore.js';

/** The state dir, readable by its owner only (0700): created so, or tightened if an older version left it open. */
function ownerOnlyDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const mode = statSync(dir).mode;
  if ((mode & 0o077) !== 0) chmodSync(dir, mode & 0o700);
}

/**
 * The database file created 0600 before SQLite opens it (SQLite gives its -wal and -shm files the
 * database's mode); one an older version left 0644 is tightened, its -wal and -shm with it.
 */
function ownerOnlyFile(file: string): void {
  closeSync(openSync(file, 'a', 0o600));
  for (const part of [file, `${file}-wal`, `${file}-shm`]) {
    const mode = statSync(part, { throwIfNoEntry: false })?.mode;
    if (mode !== undefined && (mode & 0o077) !== 0) chmodSync(part, mode & 0o600);
  }
}

/**
 * The embedded task store: one SQLite file (WAL) in the state dir. Every statement is prepared
 * once and kept; work that must be atomic runs in one IMMEDIATE transaction (the database's write
 * lock), so several `keel` processes on one state dir keep one unbroken event chain.
 */
export function createSqliteTaskStore(stateDir: string): TaskStore {
  ownerOnlyDir(stateDir);
  ownerOnlyFile(path.join(stateDir, 'tasks.db'));
  const { db } = openSqliteDatabase(path.join(stateDir, 'tasks.db'));

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
      uniqueViolation: (error) => (error as { code?: unknown }).code === 'SQLITE_CONSTRAINT_UNIQUE',
    },
    executor,
  );

  return {
    ...core,
    async close() {
      db.close();
    },
    async aggregateTaskSummaries(filter = {}) {
      return aggregate(db, filter);
    },
  };
}

/**
 * Per task type: counts and sums in one grouped pass, each type's latencies (sorted) read from
 * the covering (type, created_at, latency_ms) index, and its costs — no row is built in JavaScript.
 */
function aggregate(db: Database.Database, filter: TaskSummaryFilter): TaskAggregate[] {
  const where = endedTasks(filter);
  const groups = db
    .prepare<string[], { type: string }>(
      `SELECT type, count(*) AS tasks, sum(status = 'succeeded') AS succeeded, sum(steps) AS steps,
         sum(input_tokens) AS input, sum(output_tokens) AS output, sum(cost_usd) AS cost,
         sum(cached_input_tokens) AS cached
       FROM task_summaries WHERE ${where.sql} GROUP BY type ORDER BY type`,
    )
    .all(...where.values);
  const typed = filter.type === undefined ? `${where.sql} AND type = ?` : where.sql;
  const latencies = db
    .prepare<string[], number>(
      `SELECT latency_ms FROM task_summaries INDEXED BY task_summaries_type_created
       WHERE ${typed} AND latency_ms IS NOT NULL`,
    )
    .pluck();
  const costs = db.prepare<string[], number>(`SELECT cost_usd FROM task_summaries WHERE ${typed}`).pluck();
  return groups.map((group) => {
    const values = filter.type === undefined ? [...where.values, group.type] : where.values;
    return aggregateFromRow(
      group,
      Float64Array.from(latencies.all(...values)).sort(),
      Float64Array.from(costs.all(...values)).sort(),
    );
  });
}
