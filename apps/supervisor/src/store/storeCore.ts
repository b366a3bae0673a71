import type { Dialect } from './dialect.js';
import { createOwnership } from './ownership.js';
import type {
  ChainVerification,
  Decision,
  ModelCallRecord,
  PurgeResult,
  TaskListFilter,
  TaskRecord,
  TaskStore,
  TaskSummaryFilter,
} from './taskStore.js';
import { createTaskWrites } from './taskWrites.js';
import { joinRequest, releaseRequests, taskBodies } from './messages.js';
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
} from './rows.js';
import { all, get, run, type Executor, type Row, type Work } from './statements.js';

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
  const where = ["status NOT IN ('queued', 'starting', 'running', 'waiting', 'escalated')"];
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

/** Rows per page when the chain is verified: memory stays bounded on a long chain. */
const verifyPage = 5000;

/**
 * The task store over SQL, once: tasks, the event chain, model and tool call records, approvals,
 * fenced ownership and kill requests ({@link createOwnership}), the global stop. A backend gives
 * it an executor (how statements and transactions run) and a dialect (what truly differs in SQL);
 * both backends answer the same conformance suite through it.
 */
export function createStoreCore(dialect: Dialect, db: Executor): StoreCore {
  const { decode, locks } = dialect;
  const toTask = (row: Row) => taskFromRow(row, decode);
  const toApproval = (row: Row) => approvalFromRow(row, decode);
  const selectApprovalForDecision = `SELECT * FROM approvals WHERE id = ?${locks?.update ?? ''}`;
  const writes = createTaskWrites(dialect);

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

  /** A task's model calls with their requests joined back from the bodies they refer to. */
  function* listModelCalls(taskId: string): Work<ModelCallRecord[]> {
    const rows = yield* all('SELECT * FROM model_calls WHERE task_id = ? ORDER BY id', [taskId]);
    const bodies = yield* taskBodies(taskId);
    return rows.map((row) => {
      const record = modelCallFromRow(row, decode);
      return { ...record, request: joinRequest(record.request, bodies) };
    });
  }

  function* purge(before: Date, at: Date): Work<PurgeResult> {
    const cutoff = before.toISOString();
    const now = at.toISOString();
    const purged = yield* all(
      'SELECT task_id, request FROM model_calls WHERE started_at < ? AND purged_at IS NULL AND request IS NOT NULL',
      [cutoff],
    );
    yield* releaseRequests(
      purged.map((row) => ({ taskId: row['task_id'] as string, request: row['request'] })),
      decode,
    );
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
      await db.execute(writes.update(id, patch));
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
      return db.transaction(writes.append(taskId, type, data, at));
    },
    async listEvents(taskId) {
      return (await db.execute(all('SELECT * FROM events WHERE task_id = ? ORDER BY seq', [taskId]))).map(
        eventFromRow,
      );
    },
    async verifyEvents() {
      return db.execute(verify());
    },
    async recordModelCall(record) {
      // The request's bodies and its row: all or none.
      return db.transaction(writes.modelCall(record));
    },
    async listModelCalls(taskId) {
      return db.execute(listModelCalls(taskId));
    },
    async recordToolCall(record) {
      return db.execute(writes.toolCall(record));
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
      return db.transaction(writes.requestApproval(request, now));
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
      return db.transaction(writes.consumeApproval(taskId, tool, argsSha256, slot, now));
    },
    ...createOwnership(dialect, db, writes),
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
