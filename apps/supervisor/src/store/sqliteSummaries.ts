import type Database from 'better-sqlite3';
import type { TaskAggregate, TaskSummaryFilter } from './taskStore.js';
import { aggregateFromRow } from './rows.js';
import { endedTasks } from './storeCore.js';

/**
 * A compact row per finished task, kept by triggers on `tasks.run`, so `keel stats` reads a few
 * numbers per task instead of parsing each run record (with its tool-call list) in JavaScript.
 * Triggers rather than code in the store's writes: whatever writes a run record — this store,
 * another process, a migration — keeps the summary current. Clustered by creation time (a task's
 * never changes), so a window is one sequential range scan.
 */
const summarySchema = `
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
`;

const summaryOf = (row: string) => `
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

const triggers = `
CREATE TRIGGER IF NOT EXISTS task_summaries_insert AFTER INSERT ON tasks WHEN NEW.run IS NOT NULL
BEGIN ${summaryOf('NEW')}; END;
CREATE TRIGGER IF NOT EXISTS task_summaries_update AFTER UPDATE OF run, status, ended_at ON tasks
WHEN NEW.run IS NOT NULL
BEGIN ${summaryOf('NEW')}; END;
`;

/** Creates the summary table and its triggers, and summarises runs recorded before they existed. */
export function installTaskSummaries(db: Database.Database): void {
  const fresh =
    db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'task_summaries'").get() ===
    undefined;
  db.exec(summarySchema);
  db.exec(triggers);
  if (fresh) db.exec(`${summaryOf('tasks')} FROM tasks WHERE tasks.run IS NOT NULL`);
}

/**
 * Per task type: counts and sums in one grouped pass, and each type's latencies (sorted) read
 * from the covering (type, created_at, latency_ms) index — no row is built in JavaScript.
 */
export function aggregateTaskSummaries(db: Database.Database, filter: TaskSummaryFilter): TaskAggregate[] {
  const where = endedTasks(filter);
  const groups = db
    .prepare<string[], { type: string }>(
      `SELECT type, count(*) AS tasks, sum(status = 'succeeded') AS succeeded, sum(steps) AS steps,
         sum(input_tokens) AS input, sum(output_tokens) AS output, sum(cost_usd) AS cost
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
  return groups.map((group) =>
    aggregateFromRow(
      group,
      Float64Array.from(
        latencies.all(...(filter.type === undefined ? [...where.values, group.type] : where.values)),
      ).sort(),
    ),
  );
}
