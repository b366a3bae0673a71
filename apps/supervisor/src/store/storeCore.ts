import { canonicalJson } from '@keel/kit';
import type {
  ApprovalRecord,
  ChainVerification,
  Decision,
  EventRecord,
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
  encodeJson as json,
  eventFromRow,
  eventHash,
  genesisHash,
  modelCallFromRow,
  summaryFromRow,
  taskFromRow,
  toolCallFromRow,
  type DecodeJson,
} from './rows.js';
import { all, get, run, type Executor, type Row, type Work } from './statements.js';

/** What differs between the SQL backends besides how statements run. */
export interface Dialect {
  /** How a JSON column reads back: SQLite gives text, PostgreSQL's jsonb arrives parsed. */
  decode: DecodeJson;
  /** A boolean as a value to bind (better-sqlite3 binds no booleans). */
  bool(value: boolean): unknown;
  /**
   * Row locks for the reads a transaction decides on; null where the transaction itself
   * serialises every writer (SQLite's IMMEDIATE holds the database's write lock).
   */
  locks: { update: string; skipLocked: string } | null;
  /**
   * The event chain's head inside an append's transaction (a row `{ seq, hash }`, or none before
   * the first event), and the statement that moves it after an insert (`seq`, `hash`), if any.
   */
  chain: { head: string; advance: string | null };
  /**
   * Where finished tasks' figures are read: a table or a derived table named `task_summaries` with
   * the columns of SQLite's (task_id, type, mode, status, created_at, latency_ms, steps,
   * input_tokens, output_tokens, cost_usd, approvals_asked, tool_calls).
   */
  summaries: string;
}

/** The task store methods both SQL backends share; each adds its aggregates, notifications and close. */
export type StoreCore = Omit<
  TaskStore,
  'close' | 'aggregateTaskSummaries' | 'announceKill' | 'listenForKills'
>;

/** `WHERE a = ? AND b = ?` over the filters that are set, with their values in order. */
function equalities(filters: ReadonlyArray<readonly [column: string, value: unknown]>): {
  sql: string;
  values: unknown[];
} {
  const set = filters.filter(([, value]) => value !== undefined);
  return {
    sql: set.length === 0 ? '' : `WHERE ${set.map(([column]) => `${column} = ?`).join(' AND ')}`,
    values: set.map(([, value]) => value),
  };
}

/** Tasks that have ended, by type and creation window, as a condition on `task_summaries`. */
export function endedTasks(filter: TaskSummaryFilter): { sql: string; values: string[] } {
  // A task queued, running, or waiting for a person (an approval, an escalation) has not ended: it counts once it does.
  const where = ["status NOT IN ('queued', 'running', 'waiting', 'escalated')"];
  const values: string[] = [];
  for (const [condition, value] of [
    ['type = ?', filter.type],
    ['created_at >= ?', filter.since],
    ['created_at < ?', filter.until],
  ] as const) {
    if (value === undefined) continue;
    where.push(condition);
    values.push(value);
  }
  return { sql: where.join(' AND '), values };
}

const insertTask = `INSERT INTO tasks (id, type, title, mode, status, created_at, ended_at, config_hash, spec, starting_state, run)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;
const insertEvent =
  'INSERT INTO events (seq, task_id, at, type, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)';
const insertModelCall = `INSERT INTO model_calls (task_id, step, agent, provider, requested_model, response_model, system_sha256,
    request, raw, reply, reserved_input_tokens, reserved_output_tokens, input_tokens, output_tokens, cost_usd, latency_ms,
    started_at, error)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`;
const insertToolCall = `INSERT INTO tool_calls (task_id, step, call_index, agent, server, tool, idempotency_key, arguments, result,
    result_bytes, latency_ms, outcome, error_code, irreversible, effect, started_at)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`;
const openApproval = `SELECT * FROM approvals WHERE task_id = ? AND kind = ? AND status IN ('pending', 'approved')
    AND agent = ? AND COALESCE(tool, '') = COALESCE(?, '') AND COALESCE(args_sha256, '') = COALESCE(?, '')
    AND expires_at > ?
  ORDER BY requested_at DESC LIMIT 1`;
const insertApproval = `INSERT INTO approvals (id, task_id, kind, status, agent, step, call_index, server, tool, args_sha256,
    arguments, reasons, summary, requested_at, expires_at)
  VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *`;
const upsertOwner =
  'INSERT INTO task_control (task_id, owner) VALUES (?, ?) ON CONFLICT (task_id) DO UPDATE SET owner = excluded.owner';

/** Rows per page when the chain is verified: memory stays bounded on a long chain. */
const verifyPage = 5000;

/**
 * The task store over SQL, once: tasks, the event chain, model and tool call records, approvals,
 * owners, kill requests and the global stop. A backend gives it an executor (how statements and
 * transactions run) and a dialect (what truly differs in SQL); both backends answer the same
 * conformance suite through it.
 */
export function createStoreCore(dialect: Dialect, db: Executor): StoreCore {
  const { decode, locks } = dialect;
  const toTask = (row: Row) => taskFromRow(row, decode);
  const toApproval = (row: Row) => approvalFromRow(row, decode);
  const forUpdate = locks?.update ?? '';
  const selectApprovalForDecision = `SELECT * FROM approvals WHERE id = ?${forUpdate}`;
  const selectApprovedForConsumption = `SELECT * FROM approvals WHERE task_id = ? AND tool = ? AND args_sha256 = ?
      AND status = 'approved' AND expires_at > ?
    ORDER BY decided_at LIMIT 1${locks?.skipLocked ?? ''}`;
  const selectOwnerForClaim = `SELECT owner FROM task_control WHERE task_id = ?${forUpdate}`;

  function* append(taskId: string, type: string, data: unknown, at: Date): Work<EventRecord> {
    const head = yield* get(dialect.chain.head);
    const prevHash = (head?.['hash'] as string | undefined) ?? genesisHash;
    const body = {
      seq: Number(head?.['seq'] ?? 0) + 1,
      taskId,
      at: at.toISOString(),
      type,
      data: data ?? null,
    };
    const hash = eventHash(prevHash, body);
    yield* run(insertEvent, [body.seq, taskId, body.at, type, canonicalJson(body.data), prevHash, hash]);
    if (dialect.chain.advance !== null) yield* run(dialect.chain.advance, [body.seq, hash]);
    return { ...body, prevHash, hash };
  }

  function* verify(): Work<ChainVerification> {
    let prevHash = genesisHash;
    let count = 0;
    for (let after = 0; ;) {
      const rows = yield* all(`SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ${verifyPage}`, [after]);
      if (rows.length === 0) return { ok: true, events: count };
      for (const row of rows) {
        count++;
        const event = eventFromRow(row);
        if (event.seq !== count)
          return { ok: false, events: count, firstBad: { seq: event.seq, reason: `expected seq ${count}` } };
        if (event.prevHash !== prevHash)
          return {
            ok: false,
            events: count,
            firstBad: { seq: event.seq, reason: 'prev_hash does not match' },
          };
        const { seq, taskId, at, type, data } = event;
        if (eventHash(prevHash, { seq, taskId, at, type, data }) !== event.hash)
          return {
            ok: false,
            events: count,
            firstBad: { seq: event.seq, reason: 'content does not match its hash' },
          };
        prevHash = event.hash;
        after = event.seq;
      }
    }
  }

  function* purge(before: Date, at: Date): Work<PurgeResult> {
    const cutoff = before.toISOString();
    const now = at.toISOString();
    return {
      modelCalls: yield* run(
        `UPDATE model_calls SET request = NULL, raw = NULL, reply = NULL, purged_at = ?
         WHERE started_at < ? AND purged_at IS NULL`,
        [now, cutoff],
      ),
      toolCalls: yield* run(
        `UPDATE tool_calls SET arguments = NULL, result = NULL, purged_at = ?
         WHERE started_at < ? AND purged_at IS NULL`,
        [now, cutoff],
      ),
    };
  }

  function* requestApproval(
    request: Parameters<TaskStore['requestApproval']>[0],
    now: Date,
  ): Work<ApprovalRecord> {
    // One open request per call: where rows lock, the task row's lock serialises two runs asking at once.
    if (locks !== null) yield* get(`SELECT id FROM tasks WHERE id = ?${locks.update}`, [request.taskId]);
    const existing = yield* get(openApproval, [
      request.taskId,
      request.kind,
      request.agent,
      request.tool,
      request.argsSha256,
      now.toISOString(),
    ]);
    if (existing !== undefined) return toApproval(existing);
    const inserted = yield* get(insertApproval, [
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
    ]);
    return toApproval(inserted!);
  }

  function* decideApproval(id: string, decision: Parameters<TaskStore['decideApproval']>[1]): Work<Decision> {
    const row = yield* get(selectApprovalForDecision, [id]);
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
      yield* run("UPDATE approvals SET status = 'expired' WHERE id = ?", [id]);
      return {
        ok: false,
        code: 'EXPIRED',
        message: `approval ${id} expired at ${current.expiresAt}`,
        approval: { ...current, status: 'expired' },
      };
    }
    const updated = yield* get(
      `UPDATE approvals SET status = ?, decided_at = ?, decided_by = ?, decision_reason = ?, decision = ?
       WHERE id = ? RETURNING *`,
      [
        decision.approve ? 'approved' : 'denied',
        now,
        decision.by,
        decision.reason,
        json(decision.decision),
        id,
      ],
    );
    return { ok: true, approval: toApproval(updated!) };
  }

  function* consumeApproval(
    taskId: string,
    tool: string,
    argsSha256: string,
    slot: string,
    now: Date,
  ): Work<ApprovalRecord | undefined> {
    const again = yield* get(
      `SELECT * FROM approvals WHERE task_id = ? AND tool = ? AND args_sha256 = ? AND status = 'consumed'
         AND consumed_by = ?`,
      [taskId, tool, argsSha256, slot],
    );
    if (again !== undefined) return toApproval(again);
    const row = yield* get(selectApprovedForConsumption, [taskId, tool, argsSha256, now.toISOString()]);
    if (row === undefined) return undefined;
    const consumed = yield* get(
      "UPDATE approvals SET status = 'consumed', consumed_by = ? WHERE id = ? AND status = 'approved' RETURNING *",
      [slot, row['id']],
    );
    return consumed === undefined ? undefined : toApproval(consumed);
  }

  function* claimOwner(taskId: string, expected: TaskOwner | null, next: TaskOwner): Work<boolean> {
    // Where rows lock, the row must exist to be locked: a first claim creates it.
    if (locks !== null)
      yield* run('INSERT INTO task_control (task_id) VALUES (?) ON CONFLICT (task_id) DO NOTHING', [taskId]);
    const row = yield* get(selectOwnerForClaim, [taskId]);
    if (canonicalJson(decode(row?.['owner'] ?? null)) !== canonicalJson(expected)) return false;
    yield* run(upsertOwner, [taskId, json(next)]);
    return true;
  }

  return {
    async createTask(task: TaskRecord) {
      await db.execute(
        run(insertTask, [
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
        ]),
      );
    },
    async updateTask(id, patch) {
      const set = [
        ['status', patch.status],
        ['ended_at', patch.endedAt],
        ['run', patch.run === undefined ? undefined : json(patch.run)],
        ['starting_state', patch.startingState === undefined ? undefined : json(patch.startingState)],
      ].filter(([, value]) => value !== undefined);
      if (set.length === 0) return;
      await db.execute(
        run(`UPDATE tasks SET ${set.map(([column]) => `${column} = ?`).join(', ')} WHERE id = ?`, [
          ...set.map(([, value]) => value),
          id,
        ]),
      );
    },
    async getTask(id) {
      const row = await db.execute(get('SELECT * FROM tasks WHERE id = ?', [id]));
      return row === undefined ? undefined : toTask(row);
    },
    async listTasks(filter: TaskListFilter = {}) {
      const where = equalities([
        ['status', filter.status],
        ['type', filter.type],
      ]);
      const rows = await db.execute(
        all(`SELECT * FROM tasks ${where.sql} ORDER BY created_at DESC, id DESC LIMIT ?`, [
          ...where.values,
          filter.limit ?? 50,
        ]),
      );
      return rows.map(toTask);
    },
    async appendEvent(taskId, type, data, at) {
      return db.transaction(append(taskId, type, data, at));
    },
    async listEvents(taskId) {
      return (await db.execute(all('SELECT * FROM events WHERE task_id = ? ORDER BY seq', [taskId]))).map(
        eventFromRow,
      );
    },
    async verifyEvents() {
      return db.execute(verify());
    },
    async recordModelCall(record: ModelCallRecord) {
      const row = await db.execute(
        get(insertModelCall, [
          record.taskId,
          record.step,
          record.agent,
          record.provider,
          record.requestedModel,
          record.responseModel,
          record.systemSha256,
          json(record.request),
          json(record.raw),
          json(record.reply),
          record.reservedInputTokens,
          record.reservedOutputTokens,
          record.inputTokens,
          record.outputTokens,
          record.costUsd,
          record.latencyMs,
          record.startedAt,
          record.error,
        ]),
      );
      return Number(row!['id']);
    },
    async listModelCalls(taskId) {
      return (await db.execute(all('SELECT * FROM model_calls WHERE task_id = ? ORDER BY id', [taskId]))).map(
        (row) => modelCallFromRow(row, decode),
      );
    },
    async recordToolCall(record: ToolCallRecord) {
      const row = await db.execute(
        get(insertToolCall, [
          record.taskId,
          record.step,
          record.callIndex,
          record.agent,
          record.server,
          record.tool,
          record.idempotencyKey,
          json(record.arguments),
          json(record.result),
          record.resultBytes,
          record.latencyMs,
          record.outcome,
          record.errorCode,
          dialect.bool(record.irreversible),
          json(record.effect),
          record.startedAt,
        ]),
      );
      return Number(row!['id']);
    },
    async listToolCalls(taskId) {
      return (await db.execute(all('SELECT * FROM tool_calls WHERE task_id = ? ORDER BY id', [taskId]))).map(
        (row) => toolCallFromRow(row, decode),
      );
    },
    async purge(before, now) {
      return db.transaction(purge(before, now));
    },
    async requestApproval(request, now) {
      return db.transaction(requestApproval(request, now));
    },
    async getApproval(id) {
      const row = await db.execute(get('SELECT * FROM approvals WHERE id = ?', [id]));
      return row === undefined ? undefined : toApproval(row);
    },
    async listApprovals(filter = {}) {
      const where = equalities([
        ['status', filter.status],
        ['task_id', filter.taskId],
      ]);
      return (
        await db.execute(all(`SELECT * FROM approvals ${where.sql} ORDER BY requested_at, id`, where.values))
      ).map(toApproval);
    },
    async decideApproval(id, decision) {
      return db.transaction(decideApproval(id, decision));
    },
    async consumeApproval(taskId, tool, argsSha256, slot, now) {
      return db.transaction(consumeApproval(taskId, tool, argsSha256, slot, now));
    },
    async setOwner(taskId, owner) {
      await db.execute(run(upsertOwner, [taskId, json(owner)]));
    },
    async claimOwner(taskId, expected, next) {
      return db.transaction(claimOwner(taskId, expected, next));
    },
    async getOwner(taskId) {
      const row = await db.execute(get('SELECT owner FROM task_control WHERE task_id = ?', [taskId]));
      return (decode(row?.['owner'] ?? null) as TaskOwner | null) ?? null;
    },
    async requestKill(taskId, at) {
      await db.execute(
        run(
          `INSERT INTO task_control (task_id, kill_requested_at) VALUES (?, ?)
           ON CONFLICT (task_id) DO UPDATE
           SET kill_requested_at = COALESCE(task_control.kill_requested_at, excluded.kill_requested_at)`,
          [taskId, at.toISOString()],
        ),
      );
    },
    async killRequested(taskId) {
      const row = await db.execute(
        get('SELECT kill_requested_at FROM task_control WHERE task_id = ?', [taskId]),
      );
      return row !== undefined && row['kill_requested_at'] !== null;
    },
    async setGlobalStop(stop) {
      await db.execute(
        stop === null
          ? run("DELETE FROM control WHERE key = 'global_stop'")
          : run(
              `INSERT INTO control (key, value) VALUES ('global_stop', ?)
               ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
              [JSON.stringify(stop)],
            ),
      );
    },
    async getGlobalStop() {
      const row = await db.execute(get("SELECT value FROM control WHERE key = 'global_stop'"));
      return row === undefined ? null : (JSON.parse(row['value'] as string) as { by: string; at: string });
    },
    async listTaskSummaries(filter = {}) {
      const where = endedTasks(filter);
      return (
        await db.execute(all(`SELECT * FROM ${dialect.summaries} WHERE ${where.sql}`, where.values))
      ).map(summaryFromRow);
    },
  };
}
