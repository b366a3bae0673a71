import { canonicalJson, sha256Hex } from '@keel/kit/core';
import { resultFromStored } from './toolResults.js';
import type {
  ApprovalRecord,
  EventRecord,
  ModelCallRecord,
  TaskAggregate,
  TaskRecord,
  TaskSummary,
  ToolCallRecord,
} from './taskStore.js';

/**
 * Rows to records, once for both backends. Their columns are the same; what differs is how a JSON
 * column arrives (SQLite: text; PostgreSQL: jsonb, already parsed) and that PostgreSQL's BIGINT ids
 * arrive as strings — hence `decode` and the `Number`s.
 */
export type DecodeJson = (value: unknown) => unknown;

export const decodeText: DecodeJson = (value) =>
  value === null || value === undefined ? null : JSON.parse(value as string);
export const decodeParsed: DecodeJson = (value) => value ?? null;
export const encodeJson = (value: unknown) => (value === undefined ? null : JSON.stringify(value));

/** The hash before the first event. */
export const genesisHash = '0'.repeat(64);

export function eventHash(prevHash: string, event: Omit<EventRecord, 'hash' | 'prevHash'>): string {
  return sha256Hex(`${prevHash}\n${canonicalJson(event)}`);
}

type Row = Record<string, unknown>;
const str = (row: Row, key: string) => row[key] as string;
const strOrNull = (row: Row, key: string) => row[key] as string | null;
const num = (row: Row, key: string) => Number(row[key]);

export function taskFromRow(source: object, decode: DecodeJson): TaskRecord {
  const row = source as Row;
  return {
    id: str(row, 'id'),
    type: str(row, 'type'),
    title: str(row, 'title'),
    mode: row['mode'] as TaskRecord['mode'],
    status: row['status'] as TaskRecord['status'],
    createdAt: str(row, 'created_at'),
    endedAt: strOrNull(row, 'ended_at'),
    configHash: str(row, 'config_hash'),
    spec: decode(row['spec']),
    startingState: decode(row['starting_state']),
    run: decode(row['run']) as TaskRecord['run'],
  };
}

export function approvalFromRow(source: object, decode: DecodeJson): ApprovalRecord {
  const row = source as Row;
  return {
    id: str(row, 'id'),
    taskId: str(row, 'task_id'),
    kind: row['kind'] as ApprovalRecord['kind'],
    status: row['status'] as ApprovalRecord['status'],
    agent: str(row, 'agent'),
    step: num(row, 'step'),
    callIndex: num(row, 'call_index'),
    server: strOrNull(row, 'server'),
    tool: strOrNull(row, 'tool'),
    argsSha256: strOrNull(row, 'args_sha256'),
    arguments: decode(row['arguments']),
    reasons: decode(row['reasons']) as string[],
    summary: str(row, 'summary'),
    requestedAt: str(row, 'requested_at'),
    expiresAt: str(row, 'expires_at'),
    decidedAt: strOrNull(row, 'decided_at'),
    decidedBy: strOrNull(row, 'decided_by'),
    decisionReason: strOrNull(row, 'decision_reason'),
    decision: decode(row['decision']),
    consumedBy: strOrNull(row, 'consumed_by'),
  };
}

/** Event data is text on both backends: canonical JSON, exactly as hashed. */
export function eventFromRow(source: object): EventRecord {
  const row = source as Row;
  return {
    seq: num(row, 'seq'),
    taskId: str(row, 'task_id'),
    at: str(row, 'at'),
    type: str(row, 'type'),
    data: JSON.parse(str(row, 'data')) as unknown,
    prevHash: str(row, 'prev_hash'),
    hash: str(row, 'hash'),
  };
}

export function modelCallFromRow(source: object, decode: DecodeJson): ModelCallRecord {
  const row = source as Row;
  return {
    id: num(row, 'id'),
    taskId: str(row, 'task_id'),
    step: num(row, 'step'),
    attempt: num(row, 'attempt'),
    agent: str(row, 'agent'),
    provider: str(row, 'provider'),
    requestedModel: str(row, 'requested_model'),
    responseModel: strOrNull(row, 'response_model'),
    systemSha256: str(row, 'system_sha256'),
    request: decode(row['request']),
    raw: decode(row['raw']),
    reply: decode(row['reply']),
    reservedInputTokens: num(row, 'reserved_input_tokens'),
    reservedOutputTokens: num(row, 'reserved_output_tokens'),
    inputTokens: num(row, 'input_tokens'),
    outputTokens: num(row, 'output_tokens'),
    costUsd: num(row, 'cost_usd'),
    latencyMs: num(row, 'latency_ms'),
    startedAt: str(row, 'started_at'),
    error: strOrNull(row, 'error'),
  };
}

export function toolCallFromRow(source: object, decode: DecodeJson): ToolCallRecord {
  const row = source as Row;
  return {
    id: num(row, 'id'),
    taskId: str(row, 'task_id'),
    step: num(row, 'step'),
    callIndex: num(row, 'call_index'),
    agent: str(row, 'agent'),
    server: str(row, 'server'),
    tool: str(row, 'tool'),
    idempotencyKey: strOrNull(row, 'idempotency_key'),
    arguments: decode(row['arguments']),
    result: resultFromStored(decode(row['result'])),
    resultBytes: num(row, 'result_bytes'),
    latencyMs: num(row, 'latency_ms'),
    outcome: row['outcome'] as ToolCallRecord['outcome'],
    errorCode: strOrNull(row, 'error_code'),
    // SQLite stores 1/0, PostgreSQL a boolean.
    irreversible: row['irreversible'] === true || row['irreversible'] === 1,
    effect: decode(row['effect']),
    startedAt: str(row, 'started_at'),
  };
}

/** A `task_summaries` row (SQLite's table, PostgreSQL's view of the run record) to its figures. */
export function summaryFromRow(source: object): TaskSummary {
  const row = source as Row;
  return {
    taskId: str(row, 'task_id'),
    type: str(row, 'type'),
    mode: str(row, 'mode'),
    status: str(row, 'status'),
    createdAt: str(row, 'created_at'),
    latencyMs: row['latency_ms'] === null ? null : num(row, 'latency_ms'),
    steps: num(row, 'steps'),
    inputTokens: num(row, 'input_tokens'),
    outputTokens: num(row, 'output_tokens'),
    cachedInputTokens: num(row, 'cached_input_tokens'),
    costUsd: num(row, 'cost_usd'),
    approvalsAsked: num(row, 'approvals_asked'),
    toolCalls: num(row, 'tool_calls'),
  };
}

/** One type's grouped sums (`tasks`, `succeeded`, `steps`, `input`, `output`, `cached`, `cost`) with its sorted latencies and costs. */
export function aggregateFromRow(
  source: object,
  latenciesMs: Float64Array,
  costsUsd: Float64Array,
): TaskAggregate {
  const row = source as Row;
  return {
    type: str(row, 'type'),
    tasks: num(row, 'tasks'),
    succeeded: num(row, 'succeeded'),
    steps: num(row, 'steps'),
    inputTokens: num(row, 'input'),
    outputTokens: num(row, 'output'),
    cachedInputTokens: num(row, 'cached'),
    costUsd: num(row, 'cost'),
    latenciesMs,
    costsUsd,
  };
}
