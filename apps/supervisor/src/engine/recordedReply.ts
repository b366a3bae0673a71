import type { FinishReason, ModelReasoning, ModelReply, ModelToolCall, ModelUsage } from '../models/model.js';
import type { ModelCallRecord } from '../store/taskStore.js';

/** The part of a model reply its record keeps beside the raw body: what the engine read. */
export interface RecordedReply {
  text: string;
  toolCalls: ModelToolCall[];
  reasoning?: ModelReasoning[];
  usage: ModelUsage;
  finishReason: FinishReason;
}

export const recordedReply = (reply: ModelReply): RecordedReply => ({
  text: reply.text,
  toolCalls: reply.toolCalls,
  ...(reply.reasoning === undefined ? {} : { reasoning: reply.reasoning }),
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
    ...(reply.reasoning === undefined ? {} : { reasoning: reply.reasoning }),
    usage: reply.usage,
    finishReason: reply.finishReason,
    responseModel: record.responseModel ?? record.requestedModel,
    raw: record.raw,
  };
}

/** One as-sent form per tool message, so the same message is the same object step after step (its stored blob is made once). */
const asSent = new WeakMap<object, object>();

/**
 * A request's messages as the provider gets them and its record keeps them: a tool result's
 * structured form stays in the tool call's record and never reaches the provider. A resumed step is
 * compared with its record in this form, so a record written with it (before) compares alike.
 */
export function messagesAsSent(messages: readonly unknown[]): unknown[] {
  return messages.map((m) => {
    if (m === null || typeof m !== 'object' || (m as { role?: unknown }).role !== 'tool') return m;
    let sent = asSent.get(m);
    if (sent === undefined) {
      const { structured: _omitted, ...rest } = m as { structured?: unknown };
      asSent.set(m, (sent = rest));
    }
    return sent;
  });
}
