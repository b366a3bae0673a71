import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { canonicalJson } from '@keel/kit';
import type {
  ApprovalRecord,
  ChainVerification,
  EventRecord,
  ModelCallRecord,
  PurgeResult,
  Decision,
  TaskListFilter,
  TaskOwner,
  TaskRecord,
  TaskStore,
  ToolCallRecord,
} from './taskStore.js';
import {
  approvalFromRow,
  decodeText,
  encodeJson,
  eventFromRow,
  eventHash,
  genesisHash,
  modelCallFromRow,
  taskFromRow,
  toolCallFromRow,
} from './rows.js';
import { aggregateTaskSummaries, installTaskSummaries, queryTaskSummaries } from './sqliteSummaries.js';

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

interface ApprovalRow {
  id: string;
  task_id: string;
  kind: ApprovalRecord['kind'];
  status: ApprovalRecord['status'];
  agent: string;
  step: number;
  call_index: number;
  server: string | null;
  tool: string | null;
  args_sha256: string | null;
  arguments: string | null;
  reasons: string;
  summary: string;
  requested_at: string;
  expires_at: string;
  decided_at: string | null;
  decided_by: string | null;
  decision_reason: string | null;
  decision: string | null;
  consumed_by: string | null;
}

const toApproval = (row: ApprovalRow): ApprovalRecord => approvalFromRow(row, decodeText);

const genesis = genesisHash;
const json = encodeJson;
const parse = (text: string | null): unknown => decodeText(text);

interface TaskRow {
  id: string;
  type: string;
  title: string;
  mode: 'orchestrated' | 'single';
  status: TaskRecord['status'];
  created_at: string;
  ended_at: string | null;
  config_hash: string;
  spec: string;
  starting_state: string | null;
  run: string | null;
}

const toTask = (row: TaskRow): TaskRecord => taskFromRow(row, decodeText);

/**
 * The embedded task store: one SQLite file (WAL) in the state dir. Event appends read the chain's
 * head and insert in one IMMEDIATE transaction, so several `keel` processes on one state dir keep
 * one unbroken chain.
 */
export function createSqliteTaskStore(stateDir: string): TaskStore {
  mkdirSync(stateDir, { recursive: true });
  const db = new Database(path.join(stateDir, 'tasks.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('busy_timeout = 5000');
  db.exec(schema);
  installTaskSummaries(db);

  const insertTask = db.prepare(
    `INSERT INTO tasks (id, type, title, mode, status, created_at, ended_at, config_hash, spec, starting_state, run)
     VALUES (@id, @type, @title, @mode, @status, @createdAt, @endedAt, @configHash, @spec, @startingState, @run)`,
  );
  const selectTask = db.prepare<[string], TaskRow>('SELECT * FROM tasks WHERE id = ?');
  const lastEvent = db.prepare<[], { seq: number; hash: string }>(
    'SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1',
  );
  const insertEvent = db.prepare(
    'INSERT INTO events (seq, task_id, at, type, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)',
  );
  const append = db.transaction((taskId: string, type: string, data: unknown, at: Date): EventRecord => {
    const last = lastEvent.get();
    const prevHash = last?.hash ?? genesis;
    const body = {
      seq: (last?.seq ?? 0) + 1,
      taskId,
      at: at.toISOString(),
      type,
      data: data ?? null,
    };
    const hash = eventHash(prevHash, body);
    insertEvent.run(body.seq, taskId, body.at, type, canonicalJson(body.data), prevHash, hash);
    return { ...body, prevHash, hash };
  });
  const insertModelCall = db.prepare(
    `INSERT INTO model_calls (task_id, step, agent, provider, requested_model, response_model, system_sha256, request, raw, reply,
       reserved_input_tokens, reserved_output_tokens, input_tokens, output_tokens, cost_usd, latency_ms, started_at, error)
     VALUES (@taskId, @step, @agent, @provider, @requestedModel, @responseModel, @systemSha256, @request, @raw, @reply,
       @reservedInputTokens, @reservedOutputTokens, @inputTokens, @outputTokens, @costUsd, @latencyMs, @startedAt, @error)`,
  );
  const insertToolCall = db.prepare(
    `INSERT INTO tool_calls (task_id, step, call_index, agent, server, tool, idempotency_key, arguments, result, result_bytes,
       latency_ms, outcome, error_code, irreversible, effect, started_at)
     VALUES (@taskId, @step, @callIndex, @agent, @server, @tool, @idempotencyKey, @arguments, @result, @resultBytes,
       @latencyMs, @outcome, @errorCode, @irreversible, @effect, @startedAt)`,
  );

  return {
    async createTask(task) {
      insertTask.run({
        ...task,
        spec: json(task.spec),
        startingState: json(task.startingState),
        run: json(task.run),
      });
    },
    async updateTask(id, patch) {
      const sets: string[] = [];
      const values: Record<string, unknown> = { id };
      const columns = {
        status: ['status', patch.status],
        endedAt: ['ended_at', patch.endedAt],
        run: ['run', patch.run === undefined ? undefined : json(patch.run)],
        startingState: [
          'starting_state',
          patch.startingState === undefined ? undefined : json(patch.startingState),
        ],
      } as const;
      for (const [param, [column, value]] of Object.entries(columns)) {
        if (value === undefined) continue;
        sets.push(`${column} = @${param}`);
        values[param] = value;
      }
      if (sets.length === 0) return;
      db.prepare(`UPDATE tasks SET ${sets.join(', ')} WHERE id = @id`).run(values);
    },
    async getTask(id) {
      const row = selectTask.get(id);
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
        where.push(`${column} = ?`);
        values.push(value);
      }
      const rows = db
        .prepare<unknown[], TaskRow>(
          `SELECT * FROM tasks ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC LIMIT ?`,
        )
        .all(...values, filter.limit ?? 50);
      return rows.map(toTask);
    },
    async appendEvent(taskId, type, data, at) {
      return append.immediate(taskId, type, data, at);
    },
    async listEvents(taskId) {
      return db
        .prepare<
          [string],
          {
            seq: number;
            task_id: string;
            at: string;
            type: string;
            data: string;
            prev_hash: string;
            hash: string;
          }
        >('SELECT * FROM events WHERE task_id = ? ORDER BY seq')
        .all(taskId)
        .map(eventFromRow);
    },
    async verifyEvents(): Promise<ChainVerification> {
      let prevHash = genesis;
      let count = 0;
      let expectedSeq = 1;
      for (const row of db
        .prepare<
          [],
          {
            seq: number;
            task_id: string;
            at: string;
            type: string;
            data: string;
            prev_hash: string;
            hash: string;
          }
        >('SELECT * FROM events ORDER BY seq')
        .iterate()) {
        count++;
        if (row.seq !== expectedSeq)
          return {
            ok: false,
            events: count,
            firstBad: { seq: row.seq, reason: `expected seq ${expectedSeq}` },
          };
        if (row.prev_hash !== prevHash)
          return { ok: false, events: count, firstBad: { seq: row.seq, reason: 'prev_hash does not match' } };
        const hash = eventHash(prevHash, {
          seq: row.seq,
          taskId: row.task_id,
          at: row.at,
          type: row.type,
          data: parse(row.data),
        });
        if (hash !== row.hash)
          return {
            ok: false,
            events: count,
            firstBad: { seq: row.seq, reason: 'content does not match its hash' },
          };
        prevHash = row.hash;
        expectedSeq++;
      }
      return { ok: true, events: count };
    },
    async recordModelCall(record: ModelCallRecord) {
      const result = insertModelCall.run({
        ...record,
        request: json(record.request),
        raw: json(record.raw),
        reply: json(record.reply),
      });
      return Number(result.lastInsertRowid);
    },
    async listModelCalls(taskId) {
      return db
        .prepare<[string], Record<string, unknown>>('SELECT * FROM model_calls WHERE task_id = ? ORDER BY id')
        .all(taskId)
        .map((row) => modelCallFromRow(row, decodeText));
    },
    async recordToolCall(record: ToolCallRecord) {
      const result = insertToolCall.run({
        ...record,
        arguments: json(record.arguments),
        result: json(record.result),
        effect: json(record.effect),
        irreversible: record.irreversible ? 1 : 0,
      });
      return Number(result.lastInsertRowid);
    },
    async listToolCalls(taskId) {
      return db
        .prepare<[string], Record<string, unknown>>('SELECT * FROM tool_calls WHERE task_id = ? ORDER BY id')
        .all(taskId)
        .map((row) => toolCallFromRow(row, decodeText));
    },
    async purge(before: Date, at: Date): Promise<PurgeResult> {
      const cutoff = before.toISOString();
      const now = at.toISOString();
      const run = db.transaction(() => ({
        modelCalls: db
          .prepare(
            'UPDATE model_calls SET request = NULL, raw = NULL, reply = NULL, purged_at = ? WHERE started_at < ? AND purged_at IS NULL',
          )
          .run(now, cutoff).changes,
        toolCalls: db
          .prepare(
            'UPDATE tool_calls SET arguments = NULL, result = NULL, purged_at = ? WHERE started_at < ? AND purged_at IS NULL',
          )
          .run(now, cutoff).changes,
      }));
      return run.immediate();
    },
    async requestApproval(request, now) {
      const open = db.transaction((): ApprovalRecord => {
        const existing = db
          .prepare<[string, string, string, string | null, string | null, string], ApprovalRow>(
            `SELECT * FROM approvals WHERE task_id = ? AND kind = ? AND status IN ('pending', 'approved')
               AND agent = ? AND IFNULL(tool, '') = IFNULL(?, '') AND IFNULL(args_sha256, '') = IFNULL(?, '')
               AND expires_at > ? ORDER BY requested_at DESC LIMIT 1`,
          )
          .get(
            request.taskId,
            request.kind,
            request.agent,
            request.tool,
            request.argsSha256,
            now.toISOString(),
          );
        if (existing !== undefined) return toApproval(existing);
        db.prepare(
          `INSERT INTO approvals (id, task_id, kind, status, agent, step, call_index, server, tool, args_sha256, arguments,
             reasons, summary, requested_at, expires_at)
           VALUES (@id, @taskId, @kind, 'pending', @agent, @step, @callIndex, @server, @tool, @argsSha256, @arguments,
             @reasons, @summary, @requestedAt, @expiresAt)`,
        ).run({ ...request, arguments: json(request.arguments), reasons: JSON.stringify(request.reasons) });
        return toApproval(
          db.prepare<[string], ApprovalRow>('SELECT * FROM approvals WHERE id = ?').get(request.id)!,
        );
      });
      return open.immediate();
    },
    async getApproval(id) {
      const row = db.prepare<[string], ApprovalRow>('SELECT * FROM approvals WHERE id = ?').get(id);
      return row === undefined ? undefined : toApproval(row);
    },
    async listApprovals(filter = {}) {
      const where: string[] = [];
      const values: string[] = [];
      for (const [column, value] of [
        ['status', filter.status],
        ['task_id', filter.taskId],
      ] as const) {
        if (value === undefined) continue;
        where.push(`${column} = ?`);
        values.push(value);
      }
      return db
        .prepare<string[], ApprovalRow>(
          `SELECT * FROM approvals ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY requested_at, id`,
        )
        .all(...values)
        .map(toApproval);
    },
    async decideApproval(id, decision) {
      const decide = db.transaction((): Decision => {
        const row = db.prepare<[string], ApprovalRow>('SELECT * FROM approvals WHERE id = ?').get(id);
        if (row === undefined) return { ok: false, code: 'NOT_FOUND', message: `no approval '${id}'` };
        if (row.status !== 'pending')
          return {
            ok: false,
            code: 'ALREADY_DECIDED',
            message: `approval ${id} is already ${row.status}${row.decided_by ? ` (by ${row.decided_by})` : ''}`,
            approval: toApproval(row),
          };
        const now = decision.now.toISOString();
        if (row.expires_at <= now) {
          db.prepare("UPDATE approvals SET status = 'expired' WHERE id = ?").run(id);
          return {
            ok: false,
            code: 'EXPIRED',
            message: `approval ${id} expired at ${row.expires_at}`,
            approval: toApproval({ ...row, status: 'expired' }),
          };
        }
        db.prepare(
          'UPDATE approvals SET status = ?, decided_at = ?, decided_by = ?, decision_reason = ?, decision = ? WHERE id = ?',
        ).run(
          decision.approve ? 'approved' : 'denied',
          now,
          decision.by,
          decision.reason,
          json(decision.decision),
          id,
        );
        return {
          ok: true,
          approval: toApproval(
            db.prepare<[string], ApprovalRow>('SELECT * FROM approvals WHERE id = ?').get(id)!,
          ),
        };
      });
      return decide.immediate();
    },
    async consumeApproval(taskId, tool, argsSha256, slot, now) {
      const consume = db.transaction((): ApprovalRecord | undefined => {
        const again = db
          .prepare<[string, string, string, string], ApprovalRow>(
            "SELECT * FROM approvals WHERE task_id = ? AND tool = ? AND args_sha256 = ? AND status = 'consumed' AND consumed_by = ?",
          )
          .get(taskId, tool, argsSha256, slot);
        if (again !== undefined) return toApproval(again);
        const row = db
          .prepare<[string, string, string, string], ApprovalRow>(
            `SELECT * FROM approvals WHERE task_id = ? AND tool = ? AND args_sha256 = ? AND status = 'approved'
               AND expires_at > ? ORDER BY decided_at LIMIT 1`,
          )
          .get(taskId, tool, argsSha256, now.toISOString());
        if (row === undefined) return undefined;
        db.prepare(
          "UPDATE approvals SET status = 'consumed', consumed_by = ? WHERE id = ? AND status = 'approved'",
        ).run(slot, row.id);
        return toApproval({ ...row, status: 'consumed', consumed_by: slot });
      });
      return consume.immediate();
    },
    async setOwner(taskId, owner) {
      db.prepare(
        'INSERT INTO task_control (task_id, owner) VALUES (?, ?) ON CONFLICT (task_id) DO UPDATE SET owner = excluded.owner',
      ).run(taskId, json(owner));
    },
    async claimOwner(taskId, expected, next) {
      const claim = db.transaction(() => {
        const row = db
          .prepare<[string], { owner: string | null }>('SELECT owner FROM task_control WHERE task_id = ?')
          .get(taskId);
        if (canonicalJson(parse(row?.owner ?? null)) !== canonicalJson(expected)) return false;
        db.prepare(
          'INSERT INTO task_control (task_id, owner) VALUES (?, ?) ON CONFLICT (task_id) DO UPDATE SET owner = excluded.owner',
        ).run(taskId, json(next));
        return true;
      });
      return claim.immediate();
    },
    async getOwner(taskId) {
      const row = db
        .prepare<[string], { owner: string | null }>('SELECT owner FROM task_control WHERE task_id = ?')
        .get(taskId);
      return (parse(row?.owner ?? null) as TaskOwner | null) ?? null;
    },
    async requestKill(taskId, at) {
      db.prepare(
        `INSERT INTO task_control (task_id, kill_requested_at) VALUES (?, ?)
           ON CONFLICT (task_id) DO UPDATE SET kill_requested_at = COALESCE(task_control.kill_requested_at, excluded.kill_requested_at)`,
      ).run(taskId, at.toISOString());
    },
    async killRequested(taskId) {
      const row = db
        .prepare<[string], { kill_requested_at: string | null }>(
          'SELECT kill_requested_at FROM task_control WHERE task_id = ?',
        )
        .get(taskId);
      return row !== undefined && row.kill_requested_at !== null;
    },
    async setGlobalStop(stop) {
      if (stop === null) db.prepare("DELETE FROM control WHERE key = 'global_stop'").run();
      else
        db.prepare(
          "INSERT INTO control (key, value) VALUES ('global_stop', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        ).run(JSON.stringify(stop));
    },
    async getGlobalStop() {
      const row = db
        .prepare<[], { value: string }>("SELECT value FROM control WHERE key = 'global_stop'")
        .get();
      return row === undefined ? null : (JSON.parse(row.value) as { by: string; at: string });
    },
    async close() {
      db.close();
    },
    async listTaskSummaries(filter = {}) {
      return queryTaskSummaries(db, filter);
    },
    async aggregateTaskSummaries(filter = {}) {
      return aggregateTaskSummaries(db, filter);
    },
  };
}
