import { redact } from '@keel/kit/core';
import { dateOf, type Clock } from '../../clock.js';
import { noEffect, type Effect } from '../../limits/sideEffects.js';
import type { ToolResult } from '../../mcp/servers.js';
import type { FinishReason, ModelReply, ModelToolCall, ModelUsage } from '../../models/model.js';
import type { Fenced, ModelCallRecord, TaskWriter, ToolCallRecord } from '../../store/taskStore.js';
import { unfenced } from '../fence.js';
import { noCrashPoint, type CrashPoint } from '../crashPoints.js';
import type { ResumeState } from '../resume.js';
import type { ToolSlot } from './call.js';

/** A tool call's line in the run's summary (`taskRun.v1`'s `toolCalls`). */
export interface ToolCallLine {
  server: string;
  tool: string;
  latencyMs: number;
  ok: boolean;
  irreversible: boolean;
}

/**
 * What a task keeps of what it does: events, model calls and tool calls in the store, and each tool
 * call's line in the run's summary. A resumed task runs again from its start, so what it already
 * recorded before it stopped is not recorded a second time. Every write goes through the owner's
 * fenced writer: one refused throws `FencedStop`, and the run ends without another write.
 */
export interface Recorder {
  readonly toolCalls: ToolCallLine[];
  event(type: string, data: unknown): Promise<void>;
  modelCall(record: ModelCallRecord): Promise<void>;
  /** Counts the call in the run's summary and stores its row. */
  toolCall(record: ToolCallRecord): Promise<void>;
  /** Counts a call answered from its record, whose row is already stored. */
  count(line: ToolCallLine): void;
}

export function createRecorder(options: {
  /** The owner's writes at its epoch: each is refused once another process claims the task or a kill lands. */
  writer: TaskWriter;
  taskId: string;
  resume: ResumeState | undefined;
  /** Stamps each event. */
  clock: Clock;
  /** Told of a refused write before it throws `FencedStop`. */
  onFenced: (fenced: Fenced) => void;
  /** Chaos runs only (KEEL_CRASH_AT): dies right after a model reply or a tool result is recorded. */
  crashPoint?: CrashPoint;
}): Recorder {
  const { writer, resume, clock, onFenced } = options;
  const crashPoint = options.crashPoint ?? noCrashPoint;
  const toolCalls: ToolCallLine[] = [];
  // A step's next try: one more than those recorded before a resume, and one more per repeat here.
  const attempts = new Map(resume?.modelAttempts ?? []);
  return {
    toolCalls,
    async event(type, data) {
      if (resume?.takeEvent(type, data) === true) return;
      unfenced(await writer.appendEvent(type, data, dateOf(clock)), onFenced);
    },
    async modelCall(record) {
      if (resume?.modelSteps.has(record.step) === true) return;
      const attempt = (attempts.get(record.step) ?? 0) + 1;
      attempts.set(record.step, attempt);
      unfenced(await writer.recordModelCall({ ...record, attempt }), onFenced);
      if (record.reply !== null) crashPoint('supervisor.after-model-recorded');
    },
    async toolCall(record) {
      toolCalls.push({
        server: record.server,
        tool: record.tool,
        latencyMs: record.latencyMs,
        ok: record.outcome === 'ok',
        irreversible: record.irreversible,
      });
      if (resume?.toolSlots.has(`${record.step}:${record.callIndex}`) === true) return;
      unfenced(await writer.recordToolCall(record), onFenced);
      crashPoint('supervisor.after-tool-recorded');
    },
    count(line) {
      toolCalls.push(line);
    },
  };
}

/** Tool arguments as recorded: secrets (by name or shape) redacted, everything else kept for replay. */
export const recordable = (args: unknown) => redact(args, { maxStringLength: Number.MAX_SAFE_INTEGER });

/** The fields of a tool call's row that say how the call went. */
export type ToolCallOutcomeFields = Pick<
  ToolCallRecord,
  'result' | 'resultBytes' | 'latencyMs' | 'outcome' | 'errorCode' | 'effect'
>;

/** The row of a call that went to its server, under its idempotency key. */
export const sentRecord = (
  taskId: string,
  slot: ToolSlot,
  sent: { idempotencyKey: string; startedAt: string },
  fields: ToolCallOutcomeFields,
): ToolCallRecord => ({
  taskId,
  step: slot.step,
  callIndex: slot.callIndex,
  agent: slot.agent,
  server: slot.tool.server,
  tool: slot.tool.name,
  idempotencyKey: sent.idempotencyKey,
  arguments: recordable(slot.args),
  irreversible: slot.classification.irreversible,
  startedAt: sent.startedAt,
  ...fields,
});

/** How a server's answer is kept: enough to hand it back to a resumed task (`resultFromRecord`). */
export const resultFields = (
  result: ToolResult,
  latencyMs: number,
  effect: Effect | null,
): ToolCallOutcomeFields => ({
  result: { text: result.text, structured: result.structured ?? null, error: result.error ?? null },
  resultBytes: result.bytes,
  latencyMs,
  outcome: result.isError ? 'error' : 'ok',
  errorCode: result.error?.code ?? null,
  effect,
});

/**
 * How a call that threw is kept: cut off by a kill or the deadline, its server gone with it
 * (SERVER_GONE: a resume sends it again), or a protocol error.
 */
export const failureFields = (
  message: string,
  cancelled: boolean,
  latencyMs: number,
  effect: Effect,
  serverGone = false,
): ToolCallOutcomeFields => ({
  result: { error: message },
  resultBytes: 0,
  latencyMs,
  outcome: 'error',
  errorCode: cancelled ? 'CANCELLED' : serverGone ? 'SERVER_GONE' : 'MCP_ERROR',
  effect,
});

/** The row of a call the harness refused before any server was asked. */
export const refusalRecord = (
  taskId: string,
  call: { step: number; callIndex: number; agent: string; call: ModelToolCall },
  refusal: { code: string; message: string },
  startedAt: string,
): ToolCallRecord => ({
  taskId,
  step: call.step,
  callIndex: call.callIndex,
  agent: call.agent,
  server: '',
  tool: call.call.name,
  idempotencyKey: null,
  arguments: recordable(call.call.arguments),
  result: { code: refusal.code, message: refusal.message },
  resultBytes: 0,
  latencyMs: 0,
  outcome: 'refused',
  errorCode: refusal.code,
  irreversible: false,
  effect: null,
  startedAt,
});

/**
 * A tool call's result and effect as they were recorded, for a resumed task that repeats the call:
 * a server's answer, or the message of a call that threw.
 */
export function resultFromRecord(record: ToolCallRecord): { result: ToolResult; effect: Effect } {
  const stored = record.result as {
    text?: string;
    structured?: Record<string, unknown> | null;
    error?: ToolResult['error'] | string | null;
  };
  const error =
    typeof stored.error === 'string'
      ? { code: record.errorCode ?? 'MCP_ERROR', message: stored.error }
      : (stored.error ?? undefined);
  return {
    result: {
      isError: record.outcome !== 'ok',
      text: stored.text ?? '',
      structured: stored.structured ?? undefined,
      error,
      bytes: record.resultBytes,
    },
    effect: (record.effect as Effect | null) ?? noEffect,
  };
}

/** The part of a model reply its record keeps beside the raw body: what the engine read. */
export interface RecordedReply {
  text: string;
  toolCalls: ModelToolCall[];
  usage: ModelUsage;
  finishReason: FinishReason;
}

export const recordedReply = (reply: ModelReply): RecordedReply => ({
  text: reply.text,
  toolCalls: reply.toolCalls,
  usage: reply.usage,
  finishReason: reply.finishReason,
});

/**
 * A model call's reply as it was recorded: what a resumed task and a replay hand back instead of
 * asking a provider. The caller checks that the record has a reply (purged and failed calls do not).
 */
export function replyFromRecord(record: ModelCallRecord): ModelReply {
  const reply = record.reply as RecordedReply;
  return {
    text: reply.text,
    toolCalls: reply.toolCalls,
    usage: reply.usage,
    finishReason: reply.finishReason,
    responseModel: record.responseModel ?? record.requestedModel,
    raw: record.raw,
  };
}
