import pg from 'pg';
import { transaction } from '@keel/kit/postgres';
import type { TaskStore } from './taskStore.js';
import { aggregateFromRow, decodeParsed, genesisHash } from './rows.js';
import { all, runAsync, type Executor, type Statement } from './statements.js';
import { createStoreCore, endedTasks } from './storeCore.js';

/** Each migration runs once, in order, inside a transaction; the version table says how far a database is. */
const migrations: readonly string[] = [
  `CREATE TABLE tasks (
     id TEXT PRIMARY KEY, type TEXT NOT NULL, title TEXT NOT NULL, mode TEXT NOT NULL, status TEXT NOT NULL,
     created_at TEXT NOT NULL, ended_at TEXT, config_hash TEXT NOT NULL, spec JSONB NOT NULL,
     starting_state JSONB, run JSONB);
   CREATE INDEX tasks_created ON tasks (created_at);
   CREATE TABLE events (
     seq BIGINT PRIMARY KEY, task_id TEXT NOT NULL, at TEXT NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL,
     prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
   CREATE INDEX events_task ON events (task_id, seq);
   CREATE TABLE chain_head (id INT PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL, hash TEXT NOT NULL);
   INSERT INTO chain_head (id, seq, hash) VALUES (1, 0, '${genesisHash}');
   CREATE TABLE model_calls (
     id BIGSERIAL PRIMARY KEY, task_id TEXT NOT NULL, step INT NOT NULL, agent TEXT NOT NULL, provider TEXT NOT NULL,
     requested_model TEXT NOT NULL, response_model TEXT, system_sha256 TEXT NOT NULL, request JSONB, raw JSONB,
     reply JSONB, reserved_input_tokens INT NOT NULL, reserved_output_tokens INT NOT NULL, input_tokens INT NOT NULL,
     output_tokens INT NOT NULL, cost_usd DOUBLE PRECISION NOT NULL, latency_ms DOUBLE PRECISION NOT NULL,
     started_at TEXT NOT NULL, error TEXT, purged_at TEXT);
   CREATE INDEX model_calls_task ON model_calls (task_id, id);
   CREATE TABLE tool_calls (
     id BIGSERIAL PRIMARY KEY, task_id TEXT NOT NULL, step INT NOT NULL, call_index INT NOT NULL, agent TEXT NOT NULL,
     server TEXT NOT NULL, tool TEXT NOT NULL, idempotency_key TEXT, arguments JSONB, result JSONB,
     result_bytes INT NOT NULL, latency_ms DOUBLE PRECISION NOT NULL, outcome TEXT NOT NULL, error_code TEXT,
     irreversible BOOLEAN NOT NULL, effect JSONB, started_at TEXT NOT NULL, purged_at TEXT);
   CREATE INDEX tool_calls_task ON tool_calls (task_id, id);
   CREATE TABLE approvals (
     id TEXT PRIMARY KEY, task_id TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL, agent TEXT NOT NULL,
     step INT NOT NULL, call_index INT NOT NULL, server TEXT, tool TEXT, args_sha256 TEXT, arguments JSONB,
     reasons JSONB NOT NULL, summary TEXT NOT NULL, requested_at TEXT NOT NULL, expires_at TEXT NOT NULL,
     decided_at TEXT, decided_by TEXT, decision_reason TEXT, decision JSONB, consumed_by TEXT);
   CREATE INDEX approvals_task ON approvals (task_id, requested_at);
   CREATE TABLE task_control (task_id TEXT PRIMARY KEY, owner JSONB, kill_requested_at TEXT);
   CREATE TABLE control (key TEXT PRIMARY KEY, value TEXT NOT NULL);`,
];

/**
 * Brings a database up to the newest schema; safe to run twice, and from two processes at once (an
 * advisory lock serialises them). Returns the versions it applied.
 */
export async function migratePostgres(pool: pg.Pool): Promise<number[]> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock(775411)');
    await client.query(
      'CREATE TABLE IF NOT EXISTS keel_schema (version INT PRIMARY KEY, applied_at TEXT NOT NULL)',
    );
    const { rows } = await client.query<{ version: number }>('SELECT version FROM keel_schema');
    const done = new Set(rows.map((r) => r.version));
    const applied: number[] = [];
    for (const [index, sql] of migrations.entries()) {
      const version = index + 1;
      if (done.has(version)) continue;
      await client.query('BEGIN');
      try {
        await client.query(sql);
        // Stamped by the database: when a schema changed is the server's fact, not a caller's.
        await client.query('INSERT INTO keel_schema (version, applied_at) VALUES ($1, now()::text)', [
          version,
        ]);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK');
        throw error;
      }
      applied.push(version);
    }
    return applied;
  } finally {
    await client.query('SELECT pg_advisory_unlock(775411)').catch(() => undefined);
    client.release();
  }
}

/**
 * Finished tasks' figures, read from each run record's JSONB as SQLite's summary table holds them;
 * a task's latency in whole milliseconds from its ISO creation and end times.
 */
const summaries = `(SELECT id AS task_id, type, mode, status, created_at,
    round(EXTRACT(EPOCH FROM (ended_at::timestamptz - created_at::timestamptz)) * 1000) AS latency_ms,
    COALESCE((run->>'steps')::int, 0) AS steps,
    COALESCE((run->'tokens'->>'input')::bigint, 0) AS input_tokens,
    COALESCE((run->'tokens'->>'output')::bigint, 0) AS output_tokens,
    COALESCE((run->>'costUsd')::float8, 0) AS cost_usd,
    COALESCE((run->>'approvalsAsked')::int, 0) AS approvals_asked,
    COALESCE(jsonb_array_length(run->'toolCalls'), 0) AS tool_calls
  FROM tasks WHERE run IS NOT NULL) AS task_summaries`;

/** The core writes `?` for each value; PostgreSQL numbers them (`$1`, `$2`, ...), once per statement text. */
function numbered(cache: Map<string, string>, sql: string): string {
  let text = cache.get(sql);
  if (text === undefined) {
    let n = 0;
    text = sql.replace(/\?/g, () => `$${++n}`);
    cache.set(sql, text);
  }
  return text;
}

/**
 * The task store on PostgreSQL, for several `keel` processes on several machines: the same core
 * and guarantees as the SQLite store. Event appends lock the chain's head row, so concurrent
 * writers still make one chain; approval decisions, consumption and owner claims run under row
 * locks; kill requests are announced with NOTIFY.
 */
export async function createPostgresTaskStore(url: string): Promise<TaskStore> {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  // An idle connection the server dropped (a restart, a failover) is discarded by the pool and
  // replaced on the next query; without a listener its error event would end the process.
  pool.on('error', () => undefined);
  try {
    await migratePostgres(pool);
  } catch (error) {
    await pool.end();
    throw error;
  }
  const texts = new Map<string, string>();
  const answerOn =
    (client: pg.Pool | pg.PoolClient) =>
    async ({ mode, sql, values }: Statement): Promise<unknown> => {
      const result = await client.query(numbered(texts, sql), values);
      if (mode === 'all') return result.rows;
      if (mode === 'get') return result.rows[0];
      return result.rowCount ?? 0;
    };
  const executor: Executor = {
    execute: (work) => runAsync(work, answerOn(pool)),
    transaction: (work) => transaction(pool, (client) => runAsync(work, answerOn(client))),
  };
  const core = createStoreCore(
    {
      decode: decodeParsed,
      bool: (value) => value,
      locks: { update: ' FOR UPDATE', skipLocked: ' FOR UPDATE SKIP LOCKED' },
      chain: {
        head: 'SELECT seq, hash FROM chain_head WHERE id = 1 FOR UPDATE',
        advance: 'UPDATE chain_head SET seq = ?, hash = ? WHERE id = 1',
      },
      summaries,
    },
    executor,
  );

  return {
    ...core,
    async announceKill(taskId) {
      await pool.query("SELECT pg_notify('keel_kill', $1)", [taskId]);
    },
    async listenForKills(listener) {
      const client = await pool.connect();
      client.on('notification', (message) => {
        if (message.channel === 'keel_kill') listener(message.payload ?? '');
      });
      await client.query('LISTEN keel_kill');
      return async () => {
        await client.query('UNLISTEN keel_kill').catch(() => undefined);
        client.release();
      };
    },
    async close() {
      await pool.end();
    },
    async aggregateTaskSummaries(filter = {}) {
      const where = endedTasks(filter);
      const rows = await executor.execute(
        all(
          `SELECT type, count(*) AS tasks, count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
             COALESCE(sum(steps), 0) AS steps, COALESCE(sum(input_tokens), 0) AS input,
             COALESCE(sum(output_tokens), 0) AS output, COALESCE(sum(cost_usd), 0) AS cost,
             array_agg(latency_ms ORDER BY latency_ms) FILTER (WHERE latency_ms IS NOT NULL) AS latencies
           FROM ${summaries} WHERE ${where.sql} GROUP BY type ORDER BY type`,
          where.values,
        ),
      );
      return rows.map((row) =>
        aggregateFromRow(row, Float64Array.from(((row['latencies'] as unknown[] | null) ?? []).map(Number))),
      );
    },
  };
}
