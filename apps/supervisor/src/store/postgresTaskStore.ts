import pg from 'pg';
import { canonicalJson } from '@keel/kit';
import { transaction } from '@keel/kit/postgres';
import type {
  ApprovalRecord,
  ChainVerification,
  Decision,
  ModelCallRecord,
  PurgeResult,
  TaskListFilter,
  TaskOwner,
  TaskRecord,
  TaskStore,
  TaskSummaryFilter,
  ToolCallRecord,
} from './taskStore.js';
import {
  approvalFromRow,
  decodeParsed,
  encodeJson,
  eventFromRow,
  eventHash,
  genesisHash,
  modelCallFromRow,
  taskFromRow,
  toolCallFromRow,
} from './rows.js';

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

const json = encodeJson;

type Row = Record<string, unknown>;

const toTask = (row: Row): TaskRecord => taskFromRow(row, decodeParsed);
const toApproval = (row: Row): ApprovalRecord => approvalFromRow(row, decodeParsed);

/**
 * The task store on PostgreSQL, for several `keel` processes on several machines: the same
 * interface and guarantees as the SQLite store. Event appends lock the chain's head row, so
 * concurrent writers still make one chain; approval decisions and consumption run under row locks.
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
  const q = async (sql: string, values: unknown[] = []) => (await pool.query(sql, values)).rows as Row[];
  const tx = <T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> => transaction(pool, fn);

  return {
    async createTask(task) {
      await q(
        `INSERT INTO tasks (id, type, title, mode, status, created_at, ended_at, config_hash, spec, starting_state, run)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
        [
          task.id,
          task.type,
          task.title,
          task.mode,
          task.status,
          task.createdAt,
          task.endedAt,
          task.configHash,
          json(task.spec),
          json(task.startingState),
          json(task.run),
        ],
      );
    },
    async updateTask(id, patch) {
      const sets: string[] = [];
      const values: unknown[] = [];
      for (const [column, value] of [
        ['status', patch.status],
        ['ended_at', patch.endedAt],
        ['run', patch.run === undefined ? undefined : json(patch.run)],
        ['starting_state', patch.startingState === undefined ? undefined : json(patch.startingState)],
      ] as const) {
        if (value === undefined) continue;
        values.push(value);
        sets.push(`${column} = $${values.length}`);
      }
      if (sets.length === 0) return;
      values.push(id);
      await q(`UPDATE tasks SET ${sets.join(', ')} WHERE id = $${values.length}`, values);
    },
    async getTask(id) {
      const [row] = await q('SELECT * FROM tasks WHERE id = $1', [id]);
      return row === undefined ? undefined : toTask(row);
    },
    async listTasks(filter: TaskListFilter = {}) {
      const where: string[] = [];
      const values: unknown[] = [];
      for (const [column, value] of [
        ['status', filter.status],
        ['type', filter.type],
      ] as const) {
        if (value === undefined) continue;
        values.push(value);
        where.push(`${column} = $${values.length}`);
      }
      values.push(filter.limit ?? 50);
      const rows = await q(
        `SELECT * FROM tasks ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC LIMIT $${values.length}`,
        values,
      );
      return rows.map(toTask);
    },
    async appendEvent(taskId, type, data, at) {
      return tx(async (client) => {
        const head = (
          await client.query<{ seq: string; hash: string }>(
            'SELECT seq, hash FROM chain_head WHERE id = 1 FOR UPDATE',
          )
        ).rows[0]!;
        const body = {
          seq: Number(head.seq) + 1,
          taskId,
          at: at.toISOString(),
          type,
          data: data ?? null,
        };
        const hash = eventHash(head.hash, body);
        await client.query(
          'INSERT INTO events (seq, task_id, at, type, data, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7)',
          [body.seq, taskId, body.at, type, canonicalJson(body.data), head.hash, hash],
        );
        await client.query('UPDATE chain_head SET seq = $1, hash = $2 WHERE id = 1', [body.seq, hash]);
        return { ...body, prevHash: head.hash, hash };
      });
    },
    async listEvents(taskId) {
      return (await q('SELECT * FROM events WHERE task_id = $1 ORDER BY seq', [taskId])).map(eventFromRow);
    },
    async verifyEvents(): Promise<ChainVerification> {
      let prevHash = genesisHash;
      let count = 0;
      let expectedSeq = 1;
      // Pages keep memory bounded on a long chain.
      for (let after = 0; ;) {
        const rows = await q('SELECT * FROM events WHERE seq > $1 ORDER BY seq LIMIT 5000', [after]);
        if (rows.length === 0) break;
        for (const row of rows) {
          count++;
          const seq = Number(row['seq']);
          if (seq !== expectedSeq)
            return { ok: false, events: count, firstBad: { seq, reason: `expected seq ${expectedSeq}` } };
          if (row['prev_hash'] !== prevHash)
            return { ok: false, events: count, firstBad: { seq, reason: 'prev_hash does not match' } };
          const hash = eventHash(prevHash, {
            seq,
            taskId: row['task_id'] as string,
            at: row['at'] as string,
            type: row['type'] as string,
            data: JSON.parse(row['data'] as string) as unknown,
          });
          if (hash !== row['hash'])
            return { ok: false, events: count, firstBad: { seq, reason: 'content does not match its hash' } };
          prevHash = hash;
          expectedSeq++;
          after = seq;
        }
      }
      return { ok: true, events: count };
    },
    async recordModelCall(r: ModelCallRecord) {
      const [row] = await q(
        `INSERT INTO model_calls (task_id, step, agent, provider, requested_model, response_model, system_sha256, request, raw, reply,
           reserved_input_tokens, reserved_output_tokens, input_tokens, output_tokens, cost_usd, latency_ms, started_at, error)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING id`,
        [
          r.taskId,
          r.step,
          r.agent,
          r.provider,
          r.requestedModel,
          r.responseModel,
          r.systemSha256,
          json(r.request),
          json(r.raw),
          json(r.reply),
          r.reservedInputTokens,
          r.reservedOutputTokens,
          r.inputTokens,
          r.outputTokens,
          r.costUsd,
          r.latencyMs,
          r.startedAt,
          r.error,
        ],
      );
      return Number(row!['id']);
    },
    async listModelCalls(taskId) {
      return (await q('SELECT * FROM model_calls WHERE task_id = $1 ORDER BY id', [taskId])).map((row) =>
        modelCallFromRow(row, decodeParsed),
      );
    },
    async recordToolCall(r: ToolCallRecord) {
      const [row] = await q(
        `INSERT INTO tool_calls (task_id, step, call_index, agent, server, tool, idempotency_key, arguments, result, result_bytes,
           latency_ms, outcome, error_code, irreversible, effect, started_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id`,
        [
          r.taskId,
          r.step,
          r.callIndex,
          r.agent,
          r.server,
          r.tool,
          r.idempotencyKey,
          json(r.arguments),
          json(r.result),
          r.resultBytes,
          r.latencyMs,
          r.outcome,
          r.errorCode,
          r.irreversible,
          json(r.effect),
          r.startedAt,
        ],
      );
      return Number(row!['id']);
    },
    async listToolCalls(taskId) {
      return (await q('SELECT * FROM tool_calls WHERE task_id = $1 ORDER BY id', [taskId])).map((row) =>
        toolCallFromRow(row, decodeParsed),
      );
    },
    async purge(before: Date, at: Date): Promise<PurgeResult> {
      return tx(async (client) => {
        const now = at.toISOString();
        const cutoff = before.toISOString();
        const models = await client.query(
          'UPDATE model_calls SET request = NULL, raw = NULL, reply = NULL, purged_at = $1 WHERE started_at < $2 AND purged_at IS NULL',
          [now, cutoff],
        );
        const tools = await client.query(
          'UPDATE tool_calls SET arguments = NULL, result = NULL, purged_at = $1 WHERE started_at < $2 AND purged_at IS NULL',
          [now, cutoff],
        );
        return { modelCalls: models.rowCount ?? 0, toolCalls: tools.rowCount ?? 0 };
      });
    },
    async requestApproval(request, now) {
      return tx(async (client) => {
        // One open request per call: the task row's lock serialises two runs asking at once.
        await client.query('SELECT id FROM tasks WHERE id = $1 FOR UPDATE', [request.taskId]);
        const existing = await client.query(
          `SELECT * FROM approvals WHERE task_id = $1 AND kind = $2 AND status IN ('pending', 'approved') AND agent = $3
             AND COALESCE(tool, '') = COALESCE($4, '') AND COALESCE(args_sha256, '') = COALESCE($5, '') AND expires_at > $6
           ORDER BY requested_at DESC LIMIT 1`,
          [request.taskId, request.kind, request.agent, request.tool, request.argsSha256, now.toISOString()],
        );
        if (existing.rows[0] !== undefined) return toApproval(existing.rows[0] as Row);
        const inserted = await client.query(
          `INSERT INTO approvals (id, task_id, kind, status, agent, step, call_index, server, tool, args_sha256, arguments,
             reasons, summary, requested_at, expires_at)
           VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING *`,
          [
            request.id,
            request.taskId,
            request.kind,
            request.agent,
            request.step,
            request.callIndex,
            request.server,
            request.tool,
            request.argsSha256,
            json(request.arguments),
            JSON.stringify(request.reasons),
            request.summary,
            request.requestedAt,
            request.expiresAt,
          ],
        );
        return toApproval(inserted.rows[0] as Row);
      });
    },
    async getApproval(id) {
      const [row] = await q('SELECT * FROM approvals WHERE id = $1', [id]);
      return row === undefined ? undefined : toApproval(row);
    },
    async listApprovals(filter = {}) {
      const where: string[] = [];
      const values: unknown[] = [];
      for (const [column, value] of [
        ['status', filter.status],
        ['task_id', filter.taskId],
      ] as const) {
        if (value === undefined) continue;
        values.push(value);
        where.push(`${column} = $${values.length}`);
      }
      return (
        await q(
          `SELECT * FROM approvals ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY requested_at, id`,
          values,
        )
      ).map(toApproval);
    },
    async decideApproval(id, decision): Promise<Decision> {
      return tx(async (client) => {
        const row = (await client.query('SELECT * FROM approvals WHERE id = $1 FOR UPDATE', [id])).rows[0] as
          Row | undefined;
        if (row === undefined) return { ok: false, code: 'NOT_FOUND', message: `no approval '${id}'` };
        const current = toApproval(row);
        if (current.status !== 'pending')
          return {
            ok: false,
            code: 'ALREADY_DECIDED',
            message: `approval ${id} is already ${current.status}${current.decidedBy ? ` (by ${current.decidedBy})` : ''}`,
            approval: current,
          };
        const now = decision.now.toISOString();
        if (current.expiresAt <= now) {
          await client.query("UPDATE approvals SET status = 'expired' WHERE id = $1", [id]);
          return {
            ok: false,
            code: 'EXPIRED',
            message: `approval ${id} expired at ${current.expiresAt}`,
            approval: { ...current, status: 'expired' },
          };
        }
        const updated = await client.query(
          'UPDATE approvals SET status = $1, decided_at = $2, decided_by = $3, decision_reason = $4, decision = $5 WHERE id = $6 RETURNING *',
          [
            decision.approve ? 'approved' : 'denied',
            now,
            decision.by,
            decision.reason,
            json(decision.decision),
            id,
          ],
        );
        return { ok: true, approval: toApproval(updated.rows[0] as Row) };
      });
    },
    async consumeApproval(taskId, tool, argsSha256, slot, now) {
      return tx(async (client) => {
        const again = (
          await client.query(
            "SELECT * FROM approvals WHERE task_id = $1 AND tool = $2 AND args_sha256 = $3 AND status = 'consumed' AND consumed_by = $4",
            [taskId, tool, argsSha256, slot],
          )
        ).rows[0] as Row | undefined;
        if (again !== undefined) return toApproval(again);
        const row = (
          await client.query(
            `SELECT * FROM approvals WHERE task_id = $1 AND tool = $2 AND args_sha256 = $3 AND status = 'approved' AND expires_at > $4
             ORDER BY decided_at LIMIT 1 FOR UPDATE SKIP LOCKED`,
            [taskId, tool, argsSha256, now.toISOString()],
          )
        ).rows[0] as Row | undefined;
        if (row === undefined) return undefined;
        const updated = await client.query(
          "UPDATE approvals SET status = 'consumed', consumed_by = $1 WHERE id = $2 AND status = 'approved' RETURNING *",
          [slot, row['id']],
        );
        return updated.rows[0] === undefined ? undefined : toApproval(updated.rows[0] as Row);
      });
    },
    async setOwner(taskId, owner: TaskOwner | null) {
      await q(
        'INSERT INTO task_control (task_id, owner) VALUES ($1, $2) ON CONFLICT (task_id) DO UPDATE SET owner = excluded.owner',
        [taskId, json(owner)],
      );
    },
    async claimOwner(taskId, expected, next) {
      return tx(async (client) => {
        await client.query(
          'INSERT INTO task_control (task_id) VALUES ($1) ON CONFLICT (task_id) DO NOTHING',
          [taskId],
        );
        const row = (
          await client.query('SELECT owner FROM task_control WHERE task_id = $1 FOR UPDATE', [taskId])
        ).rows[0] as Row;
        const current = (row['owner'] ?? null) as TaskOwner | null;
        if (canonicalJson(current) !== canonicalJson(expected)) return false;
        await client.query('UPDATE task_control SET owner = $2 WHERE task_id = $1', [taskId, json(next)]);
        return true;
      });
    },
    async getOwner(taskId) {
      const [row] = await q('SELECT owner FROM task_control WHERE task_id = $1', [taskId]);
      return (row?.['owner'] ?? null) as TaskOwner | null;
    },
    async requestKill(taskId, at) {
      await q(
        `INSERT INTO task_control (task_id, kill_requested_at) VALUES ($1, $2)
           ON CONFLICT (task_id) DO UPDATE SET kill_requested_at = COALESCE(task_control.kill_requested_at, excluded.kill_requested_at)`,
        [taskId, at.toISOString()],
      );
    },
    async killRequested(taskId) {
      const [row] = await q('SELECT kill_requested_at FROM task_control WHERE task_id = $1', [taskId]);
      return row !== undefined && row['kill_requested_at'] !== null;
    },
    async setGlobalStop(stop) {
      if (stop === null) await q("DELETE FROM control WHERE key = 'global_stop'");
      else
        await q(
          "INSERT INTO control (key, value) VALUES ('global_stop', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
          [JSON.stringify(stop)],
        );
    },
    async getGlobalStop() {
      const [row] = await q("SELECT value FROM control WHERE key = 'global_stop'");
      return row === undefined ? null : (JSON.parse(row['value'] as string) as { by: string; at: string });
    },
    async announceKill(taskId) {
      await q("SELECT pg_notify('keel_kill', $1)", [taskId]);
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
    async listTaskSummaries(filter = {}) {
      const where = summaryWhere(filter);
      const rows = await q(
        `SELECT id, type, mode, status, created_at, ${latencySql} AS latency_ms,
           COALESCE((run->>'steps')::int, 0) AS steps,
           COALESCE((run->'tokens'->>'input')::bigint, 0) AS input_tokens,
           COALESCE((run->'tokens'->>'output')::bigint, 0) AS output_tokens,
           COALESCE((run->>'costUsd')::float8, 0) AS cost_usd,
           COALESCE((run->>'approvalsAsked')::int, 0) AS approvals_asked,
           COALESCE(jsonb_array_length(run->'toolCalls'), 0) AS tool_calls
         FROM tasks WHERE ${where.sql}`,
        where.values,
      );
      return rows.map((row) => ({
        taskId: row['id'] as string,
        type: row['type'] as string,
        mode: row['mode'] as string,
        status: row['status'] as string,
        createdAt: row['created_at'] as string,
        latencyMs: row['latency_ms'] === null ? null : Number(row['latency_ms']),
        steps: Number(row['steps']),
        inputTokens: Number(row['input_tokens']),
        outputTokens: Number(row['output_tokens']),
        costUsd: Number(row['cost_usd']),
        approvalsAsked: Number(row['approvals_asked']),
        toolCalls: Number(row['tool_calls']),
      }));
    },
    async aggregateTaskSummaries(filter = {}) {
      const where = summaryWhere(filter);
      const rows = await q(
        `SELECT type, count(*) AS tasks, count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
           COALESCE(sum((run->>'steps')::int), 0) AS steps,
           COALESCE(sum((run->'tokens'->>'input')::bigint), 0) AS input,
           COALESCE(sum((run->'tokens'->>'output')::bigint), 0) AS output,
           COALESCE(sum((run->>'costUsd')::float8), 0) AS cost,
           array_agg(${latencySql} ORDER BY ${latencySql}) FILTER (WHERE ended_at IS NOT NULL) AS latencies
         FROM tasks WHERE ${where.sql} GROUP BY type ORDER BY type`,
        where.values,
      );
      return rows.map((row) => ({
        type: row['type'] as string,
        tasks: Number(row['tasks']),
        succeeded: Number(row['succeeded']),
        steps: Number(row['steps']),
        inputTokens: Number(row['input']),
        outputTokens: Number(row['output']),
        costUsd: Number(row['cost']),
        latenciesMs: Float64Array.from(((row['latencies'] as unknown[] | null) ?? []).map(Number)),
      }));
    },
  };
}

/** A task's latency in whole milliseconds, from its ISO creation and end times (as SQLite's summary has it). */
const latencySql = `round(EXTRACT(EPOCH FROM (ended_at::timestamptz - created_at::timestamptz)) * 1000)`;

/** Ended tasks (not running, not waiting for a person) with a run record, filtered. */
function summaryWhere(filter: TaskSummaryFilter): { sql: string; values: string[] } {
  const where = ['run IS NOT NULL', "status NOT IN ('queued', 'running', 'waiting', 'escalated')"];
  const values: string[] = [];
  for (const [column, op, value] of [
    ['type', '=', filter.type],
    ['created_at', '>=', filter.since],
    ['created_at', '<', filter.until],
  ] as const) {
    if (value === undefined) continue;
    values.push(value);
    where.push(`${column} ${op} $${values.length}`);
  }
  return { sql: where.join(' AND '), values };
}
