import pg from 'pg';
import { isConnectionLost, poolConfig, transaction } from '@keel/kit/postgres';
import { StoreConnectionLost, type TaskStore } from './taskStore.js';
import { aggregateFromRow, decodeParsed } from './rows.js';
import { migratePostgres } from './postgresMigrations.js';
import { all, runAsync, type Executor, type Statement } from './statements.js';
import { createStoreCore, endedTasks } from './storeCore.js';

export { migratePostgres } from './postgresMigrations.js';

/**
 * Finished tasks' figures, read from each run record's JSONB as SQLite's summary table holds them;
 * a task's latency in whole milliseconds from its ISO creation and end times.
 */
const summaries = `(SELECT id AS task_id, type, mode, status, created_at,
    round(EXTRACT(EPOCH FROM (ended_at::timestamptz - created_at::timestamptz)) * 1000) AS latency_ms,
    COALESCE((run->>'steps')::int, 0) AS steps,
    COALESCE((run->'tokens'->>'input')::bigint, 0) AS input_tokens,
    COALESCE((run->'tokens'->>'output')::bigint, 0) AS output_tokens,
    COALESCE((run->'tokens'->>'cachedInput')::bigint, 0) AS cached_input_tokens,
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

/** A store call's failure, with a lost connection told apart ({@link StoreConnectionLost}). */
async function lostAs<T>(pending: Promise<T>): Promise<T> {
  try {
    return await pending;
  } catch (error) {
    throw isConnectionLost(error) ? new StoreConnectionLost(error) : error;
  }
}

/**
 * The task store on PostgreSQL, for several `keel` processes on several machines: the same core
 * and guarantees as the SQLite store. Event appends lock the chain's head row, so concurrent
 * writers still make one chain; approval decisions, consumption and owner claims run under row
 * locks; kill requests are announced with NOTIFY.
 */
export async function createPostgresTaskStore(url: string): Promise<TaskStore> {
  // Kit's settings: a worker stopped mid-transaction loses its session and its locks after 5 s.
  const pool = new pg.Pool(poolConfig(url, 4));
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
    execute: (work) => lostAs(runAsync(work, answerOn(pool))),
    transaction: (work) => lostAs(transaction(pool, (client) => runAsync(work, answerOn(client)))),
  };
  const core = createStoreCore(
    {
      decode: decodeParsed,
      bool: (value) => value,
      locks: { update: ' FOR UPDATE', share: ' FOR SHARE', skipLocked: ' FOR UPDATE SKIP LOCKED' },
      chain: {
        head: 'SELECT seq, hash FROM chain_head WHERE id = 1 FOR UPDATE',
        advance: 'UPDATE chain_head SET seq = ?, hash = ? WHERE id = 1',
      },
      summaries,
      uniqueViolation: (error) => (error as { code?: unknown }).code === '23505',
    },
    executor,
  );

  return {
    ...core,
    async announceKill(taskId) {
      await pool.query("SELECT pg_notify('keel_kill', $1)", [taskId]);
    },
    async listenForKills(listener) {
      // One connection held for LISTEN. When the server ends it (a restart, a failover, an admin's
      // pg_terminate_backend) its client emits `error`, which would end the process unheard; here it
      // is dropped and LISTEN taken up again on a fresh connection. A kill announced while no
      // connection listened is still seen: a task reads its kill request before every call.
      let client: pg.PoolClient | undefined;
      let stopped = false;
      let retry: NodeJS.Timeout | undefined;
      const listen = async (): Promise<void> => {
        const next = await pool.connect();
        next.on('notification', (message) => {
          if (message.channel === 'keel_kill') listener(message.payload ?? '');
        });
        next.on('error', (error) => {
          if (client !== next) return;
          client = undefined;
          next.release(error);
          if (!stopped) again();
        });
        try {
          await next.query('LISTEN keel_kill');
        } catch (error) {
          next.release(error as Error);
          throw error;
        }
        client = next;
      };
      const again = () => {
        retry = setTimeout(() => void listen().catch(() => (stopped ? undefined : again())), 250);
        retry.unref();
      };
      await listen();
      return async () => {
        stopped = true;
        clearTimeout(retry);
        const held = client;
        client = undefined;
        if (held === undefined) return;
        await held.query('UNLISTEN keel_kill').catch(() => undefined);
        held.release();
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
             COALESCE(sum(cached_input_tokens), 0) AS cached,
             array_agg(latency_ms ORDER BY latency_ms) FILTER (WHERE latency_ms IS NOT NULL) AS latencies,
             array_agg(cost_usd ORDER BY cost_usd) AS costs
           FROM ${summaries} WHERE ${where.sql} GROUP BY type ORDER BY type`,
          where.values,
        ),
      );
      const sorted = (values: unknown) => Float64Array.from(((values as unknown[] | null) ?? []).map(Number));
      return rows.map((row) => aggregateFromRow(row, sorted(row['latencies']), sorted(row['costs'])));
    },
  };
}
