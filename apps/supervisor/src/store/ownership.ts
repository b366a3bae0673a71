import type { TaskStatus } from '@keel/contracts';
import { KeelError, canonicalJson } from '@keel/kit/core';
import type { Dialect } from './dialect.js';
import type { Claim, ClaimMove, Fenceable, Fenced, TaskOwner, TaskStore, TaskWriter } from './taskStore.js';
import { encodeJson as json } from './rows.js';
import { get, run, type Executor, type Work } from './statements.js';
import type { TaskWrites } from './taskWrites.js';

export type OwnershipMethods = Pick<
  TaskStore,
  'claimOwner' | 'writer' | 'getOwner' | 'getOwnership' | 'requestKill' | 'killRequested'
>;

// Where rows lock, the row must exist to be locked: a first claim creates it.
const ensureRow = 'INSERT INTO task_control (task_id) VALUES (?) ON CONFLICT (task_id) DO NOTHING';
const claimed = `INSERT INTO task_control (task_id, owner, epoch, owner_epoch) VALUES (?, ?, ?, ?)
  ON CONFLICT (task_id) DO UPDATE SET owner = excluded.owner, epoch = excluded.epoch, owner_epoch = excluded.owner_epoch`;
const killed = `INSERT INTO task_control (task_id, kill_requested_at, epoch) VALUES (?, ?, 1)
  ON CONFLICT (task_id) DO UPDATE
  SET kill_requested_at = COALESCE(task_control.kill_requested_at, excluded.kill_requested_at),
    epoch = task_control.epoch + 1
  RETURNING epoch`;
const released =
  'UPDATE task_control SET owner = NULL, owner_epoch = NULL WHERE task_id = ? AND owner_epoch = ?';

function fenced(taskId: string, epoch: number, current: number | null, why?: string): Fenced {
  return {
    ok: false,
    code: 'FENCED',
    taskId,
    epoch,
    current,
    message:
      why ??
      (current === null
        ? `task ${taskId} has no owner record: a writer at epoch ${epoch} may not write to it`
        : `task ${taskId} is at epoch ${current} (taken over or killed): the writer at epoch ${epoch} may not write to it`),
  };
}

/**
 * Who runs each task, and the fence on its writes: claims and kill requests move the task's epoch
 * on; an owner's writes go through a {@link TaskWriter} that checks the epoch in the same
 * transaction as the write.
 */
export function createOwnership(dialect: Dialect, db: Executor, writes: TaskWrites): OwnershipMethods {
  const { decode, locks } = dialect;
  const ownerOf = (row: Record<string, unknown> | undefined) =>
    (decode(row?.['owner'] ?? null) as TaskOwner | null) ?? null;
  const forUpdate = `SELECT owner, epoch FROM task_control WHERE task_id = ?${locks?.update ?? ''}`;
  // A share lock: a takeover's update waits for this write to commit, or this write waits and sees it.
  const forWrite = `SELECT epoch FROM task_control WHERE task_id = ?${locks?.share ?? ''}`;

  function* claim(
    taskId: string,
    expected: TaskOwner | null,
    next: TaskOwner,
    move?: ClaimMove,
  ): Work<Claim> {
    if (locks !== null) yield* run(ensureRow, [taskId]);
    const row = yield* get(forUpdate, [taskId]);
    const current = ownerOf(row);
    if (canonicalJson(current) !== canonicalJson(expected)) return { ok: false, current };
    if (move !== undefined) {
      const task = yield* get(`SELECT status FROM tasks WHERE id = ?${locks?.update ?? ''}`, [taskId]);
      const status = task?.['status'] as TaskStatus | undefined;
      if (status !== move.from) return { ok: false, current, status };
    }
    const epoch = Number(row?.['epoch'] ?? 0) + 1;
    yield* run(claimed, [taskId, json(next), epoch, epoch]);
    if (move !== undefined) yield* writes.update(taskId, { status: move.to });
    return { ok: true, epoch };
  }

  /** `work` only while the task is still at `epoch`, checked in the same transaction. */
  function* guarded<T>(taskId: string, epoch: number, work: Work<T>): Work<Fenceable<T>> {
    const row = yield* get(forWrite, [taskId]);
    const current = row === undefined ? null : Number(row['epoch']);
    if (current !== epoch) return fenced(taskId, epoch, current);
    return { ok: true, value: yield* work };
  }

  /** Changes the owner record while it is this epoch's: a heartbeat, or what the owner learnt since its claim. */
  function* amend(taskId: string, epoch: number, patch: Partial<TaskOwner>): Work<Fenceable<void>> {
    const row = yield* get(forUpdate, [taskId]);
    const current = row === undefined ? null : Number(row['epoch']);
    if (current !== epoch) return fenced(taskId, epoch, current);
    const owner = ownerOf(row);
    if (owner === null)
      return fenced(taskId, epoch, current, `task ${taskId} has no owner to renew: it was released`);
    yield* run('UPDATE task_control SET owner = ? WHERE task_id = ?', [json({ ...owner, ...patch }), taskId]);
    return { ok: true, value: undefined };
  }

  function writer(taskId: string, epoch: number): TaskWriter {
    const checked = <T>(work: Work<T>) => db.transaction(guarded(taskId, epoch, work));
    const own = (record: { taskId: string }) => {
      if (record.taskId !== taskId)
        throw new KeelError(
          'INVALID_ARGUMENT',
          `a record of task ${record.taskId} was given to the writer of task ${taskId}`,
          { hint: 'each task writes through the writer its own claim returned' },
        );
    };
    return {
      taskId,
      epoch,
      appendEvent: async (type, data, at) => checked(writes.append(taskId, type, data, at)),
      async recordModelCall(record) {
        own(record);
        return checked(writes.modelCall(record));
      },
      async recordToolCall(record) {
        own(record);
        return checked(writes.toolCall(record));
      },
      updateTask: async (patch) => checked(writes.update(taskId, patch)),
      // The end, the status and the owner's release in one write: a process that dies right after
      // its end (before its cleanup) leaves no owner on an ended task.
      endRun: async (type, data, at, patch) =>
        checked(
          (function* () {
            const event = yield* writes.append(taskId, type, data, at);
            yield* writes.update(taskId, patch);
            yield* run(released, [taskId, epoch]);
            return event;
          })(),
        ),
      async requestApproval(request, now) {
        own(request);
        return checked(writes.requestApproval(request, now));
      },
      consumeApproval: async (tool, argsSha256, slot, now) =>
        checked(writes.consumeApproval(taskId, tool, argsSha256, slot, now)),
      renewOwner: async (heartbeatAt) =>
        db.transaction(amend(taskId, epoch, { heartbeatAt: heartbeatAt.toISOString() })),
      updateOwner: async (patch) => db.transaction(amend(taskId, epoch, patch)),
      releaseOwner: async () => (await db.execute(run(released, [taskId, epoch]))) === 1,
    };
  }

  return {
    async claimOwner(taskId, expected, next, move) {
      return db.transaction(claim(taskId, expected, next, move));
    },
    writer,
    async getOwner(taskId) {
      return ownerOf(await db.execute(get('SELECT owner FROM task_control WHERE task_id = ?', [taskId])));
    },
    async getOwnership(taskId) {
      const row = await db.execute(
        get('SELECT owner, epoch, kill_requested_at FROM task_control WHERE task_id = ?', [taskId]),
      );
      return {
        owner: ownerOf(row),
        epoch: Number(row?.['epoch'] ?? 0),
        killRequested: (row?.['kill_requested_at'] ?? null) !== null,
      };
    },
    async requestKill(taskId, at) {
      const row = await db.execute(get(killed, [taskId, at.toISOString()]));
      return Number(row!['epoch']);
    },
    async killRequested(taskId) {
      const row = await db.execute(
        get('SELECT kill_requested_at FROM task_control WHERE task_id = ?', [taskId]),
      );
      return row !== undefined && row['kill_requested_at'] !== null;
    },
  };
}
