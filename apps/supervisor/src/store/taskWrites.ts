import { storeRequest } from './messages.js';
import { storedResult } from './toolResults.js';
import { KeelError, canonicalJson } from '@keel/kit/core';
import type { Dialect } from './dialect.js';
import type {
  ApprovalRecord,
  ApprovalRequest,
  EventRecord,
  ModelCallRecord,
  TaskPatch,
  ToolCallRecord,
} from './taskStore.js';
import { approvalFromRow, encodeJson as json, eventHash, genesisHash } from './rows.js';
import { get, run, type Work } from './statements.js';

/**
 * The writes a running task makes, as statements: the store runs them as they are for the
 * writes no owner makes, and behind the epoch check for an owner's ({@link TaskWriter}).
 */
export interface TaskWrites {
  append(taskId: string, type: string, data: unknown, at: Date): Work<EventRecord>;
  update(taskId: string, patch: TaskPatch): Work<void>;
  modelCall(record: ModelCallRecord): Work<number>;
  toolCall(record: ToolCallRecord): Work<number>;
  requestApproval(request: ApprovalRequest, now: Date): Work<ApprovalRecord>;
  consumeApproval(
    taskId: string,
    tool: string,
    argsSha256: string,
    slot: string,
    now: Date,
  ): Work<ApprovalRecord | undefined>;
}

const insertEvent =
  'INSERT INTO events (seq, task_id, at, type, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)';
// Left out, the attempt is the step's next: one more than the highest recorded.
const insertModelCall = `INSERT INTO model_calls (task_id, step, attempt, agent, provider, requested_model, response_model,
    system_sha256, request, raw, reply, reserved_input_tokens, reserved_output_tokens, input_tokens, output_tokens,
    cost_usd, latency_ms, started_at, error)
  VALUES (?, ?, COALESCE(?, (SELECT COALESCE(MAX(attempt), 0) + 1 FROM model_calls WHERE task_id = ? AND step = ?)),
    ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
  RETURNING id`;
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
const consumedBySlot = `SELECT * FROM approvals WHERE task_id = ? AND tool = ? AND args_sha256 = ? AND status = 'consumed'
    AND consumed_by = ?`;
const consume =
  "UPDATE approvals SET status = 'consumed', consumed_by = ? WHERE id = ? AND status = 'approved' RETURNING *";

export function createTaskWrites(dialect: Dialect): TaskWrites {
  const { decode, locks } = dialect;
  const toApproval = (row: object) => approvalFromRow(row, decode);
  const lockTask = locks === null ? null : `SELECT id FROM tasks WHERE id = ?${locks.update}`;
  const approvedForSlot = `SELECT * FROM approvals WHERE task_id = ? AND tool = ? AND args_sha256 = ?
      AND status = 'approved' AND expires_at > ?
    ORDER BY decided_at LIMIT 1${locks?.skipLocked ?? ''}`;

  return {
    *append(taskId, type, data, at) {
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
    },

    *update(taskId, patch) {
      const set = [
        ['status', patch.status],
        ['ended_at', patch.endedAt],
        ['run', patch.run === undefined ? undefined : json(patch.run)],
        ['starting_state', patch.startingState === undefined ? undefined : json(patch.startingState)],
      ].filter(([, value]) => value !== undefined);
      if (set.length === 0) return;
      yield* run(`UPDATE tasks SET ${set.map(([column]) => `${column} = ?`).join(', ')} WHERE id = ?`, [
        ...set.map(([, value]) => value),
        taskId,
      ]);
    },

    *modelCall(record) {
      try {
        const row = yield* get(insertModelCall, [
          record.taskId,
          record.step,
          record.attempt ?? null,
          record.taskId,
          record.step,
          record.agent,
          record.provider,
          record.requestedModel,
          record.responseModel,
          record.systemSha256,
          json(yield* storeRequest(record.taskId, record.request)),
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
        ]);
        return Number(row!['id']);
      } catch (error) {
        if (!dialect.uniqueViolation(error)) throw error;
        throw new KeelError(
          'CONFLICT',
          `task ${record.taskId} already has a model call recorded as step ${record.step} attempt ${record.attempt ?? '(next)'}`,
          {
            cause: error,
            hint: 'another process is running this task, or a repeated call was not counted as a new attempt',
          },
        );
      }
    },

    *toolCall(record) {
      const row = yield* get(insertToolCall, [
        record.taskId,
        record.step,
        record.callIndex,
        record.agent,
        record.server,
        record.tool,
        record.idempotencyKey,
        json(record.arguments),
        json(storedResult(record.result)),
        record.resultBytes,
        record.latencyMs,
        record.outcome,
        record.errorCode,
        dialect.bool(record.irreversible),
        json(record.effect),
        record.startedAt,
      ]);
      return Number(row!['id']);
    },

    *requestApproval(request, now) {
      // One open request per call: where rows lock, the task row's lock serialises two runs asking at once.
      if (lockTask !== null) yield* get(lockTask, [request.taskId]);
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
    },

    *consumeApproval(taskId, tool, argsSha256, slot, now) {
      const again = yield* get(consumedBySlot, [taskId, tool, argsSha256, slot]);
      if (again !== undefined) return toApproval(again);
      const row = yield* get(approvedForSlot, [taskId, tool, argsSha256, now.toISOString()]);
      if (row === undefined) return undefined;
      const consumed = yield* get(consume, [slot, row['id']]);
      return consumed === undefined ? undefined : toApproval(consumed);
    },
  };
}
