import { canonicalJson, KeelError } from '@keel/kit/core';
import type { Model, ModelReply } from '../models/model.js';
import type { EventRecord, ModelCallRecord, ToolCallRecord } from '../store/taskStore.js';
import { messagesAsSent, replyFromRecord } from './recordedReply.js';

const sent = (messages: unknown) => (Array.isArray(messages) ? messagesAsSent(messages) : messages);

/**
 * What a resumed task already did. The task runs again from its start: model calls of recorded
 * steps are answered from their records (never asked again), tool calls go out again with the same
 * idempotency keys (the servers answer with their stored results, so no effect happens twice), and
 * nothing already recorded is recorded a second time.
 */
export class ResumeState {
  readonly modelSteps: ReadonlySet<number>;
  /** How many calls each step has recorded, answered or failed: a step asked again is the next attempt. */
  readonly modelAttempts: ReadonlyMap<number, number>;
  readonly #toolSlots: Map<string, ToolCallRecord>;
  readonly #events = new Map<string, number>();
  readonly lastStep: number;

  constructor(
    models: readonly ModelCallRecord[],
    tools: readonly ToolCallRecord[],
    events: readonly EventRecord[],
  ) {
    this.modelSteps = new Set(models.filter((m) => m.reply !== null).map((m) => m.step));
    const attempts = new Map<number, number>();
    for (const m of models) attempts.set(m.step, Math.max(attempts.get(m.step) ?? 0, m.attempt ?? 1));
    this.modelAttempts = attempts;
    this.#toolSlots = new Map(
      tools
        // A call cut off by a kill or by its server's death, or refused until a human approves, goes out again.
        .filter(
          (t) =>
            t.errorCode !== 'CANCELLED' &&
            t.errorCode !== 'SERVER_GONE' &&
            t.errorCode !== 'APPROVAL_REQUIRED',
        )
        .map((t) => [`${t.step}:${t.callIndex}`, t]),
    );
    for (const event of events) {
      const key = eventKey(event.type, event.data);
      this.#events.set(key, (this.#events.get(key) ?? 0) + 1);
    }
    this.lastStep = Math.max(0, ...this.modelSteps);
  }

  /** Recorded tool results by `step:callIndex`, handed back instead of calling again. */
  get toolSlots(): ReadonlyMap<string, ToolCallRecord> {
    return this.#toolSlots;
  }

  /** An accepted divergence at `step`: from there on the model is asked afresh, so no recorded result answers a call. */
  forgetFrom(step: number): void {
    for (const [slot, record] of this.#toolSlots) if (record.step >= step) this.#toolSlots.delete(slot);
  }

  /** True (once per recorded copy) when this event was already appended before the crash. */
  takeEvent(type: string, data: unknown): boolean {
    const key = eventKey(type, data);
    const left = this.#events.get(key) ?? 0;
    if (left === 0) return false;
    this.#events.set(key, left - 1);
    return true;
  }
}

const eventKey = (type: string, data: unknown) => `${type}\n${canonicalJson(data ?? null)}`;

/** What a resumed task does when a recorded step would be asked something else. */
export interface Divergence {
  /** `--accept-divergence`: ask the model afresh from the step instead of stopping. */
  accept: boolean;
  /** Told (to record it) when a divergence is accepted. */
  accepted: (step: number, agent: string, path: string) => Promise<void>;
}

/**
 * A model that answers recorded steps from their records and asks the real model only after them.
 * A recorded reply is handed back only to the request it answered: a resumed step whose messages
 * or tools differ from the recorded ones (an edited prompt file, a changed config or workspace)
 * stops with the first difference named, like a workflow engine failing on nondeterminism, unless
 * the divergence is accepted — then that step and every later one are asked afresh. `max_tokens`
 * is left out of the comparison: it is what the limits leave, not what the model is asked.
 */
export function withRecordedReplies(
  model: Model,
  records: readonly ModelCallRecord[],
  divergence: Divergence = { accept: false, accepted: async () => {} },
): Model {
  const byStep = new Map(records.filter((r) => r.reply !== null).map((r) => [r.step, r]));
  let divergedAt = Infinity;
  return {
    provider: model.provider,
    model: model.model,
    async generate(request, context): Promise<ModelReply> {
      const record = byStep.get(context.step);
      if (record === undefined || record.agent !== context.agent || context.step >= divergedAt)
        return model.generate(request, context);
      const recorded = record.request as { messages?: unknown; tools?: unknown } | null;
      const path =
        recorded === null
          ? undefined
          : firstDifference(
              JSON.parse(canonicalJson({ messages: sent(recorded.messages), tools: recorded.tools })),
              JSON.parse(canonicalJson({ messages: messagesAsSent(request.messages), tools: request.tools })),
            );
      if (path === undefined) return replyFromRecord(record);
      if (!divergence.accept)
        throw new KeelError(
          'PRECONDITION_FAILED',
          `resumed step ${context.step} (${context.agent}) would ask the model something other than its recorded request: first difference at ${path}`,
          {
            hint: 'a prompt file, the config or the workspace changed since the task stopped; restore it, or `keel resume TASK --accept-divergence` asks the model afresh from this step (recorded)',
            // No provider was asked: nothing to bill.
            details: { unbilled: true, step: context.step, path },
          },
        );
      divergedAt = context.step;
      await divergence.accepted(context.step, context.agent, path);
      return model.generate(request, context);
    },
  };
}

/** The JSON path of the first place two JSON values differ (`$.messages[0].content`), or undefined when equal. */
export function firstDifference(recorded: unknown, current: unknown, at = '$'): string | undefined {
  if (recorded === current) return undefined;
  if (Array.isArray(recorded) && Array.isArray(current)) {
    for (let i = 0; i < Math.max(recorded.length, current.length); i++) {
      if (i >= recorded.length || i >= current.length) return `${at}[${i}]`;
      const found = firstDifference(recorded[i], current[i], `${at}[${i}]`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (
    recorded !== null &&
    current !== null &&
    typeof recorded === 'object' &&
    typeof current === 'object' &&
    !Array.isArray(recorded) &&
    !Array.isArray(current)
  ) {
    const a = recorded as Record<string, unknown>;
    const b = current as Record<string, unknown>;
    for (const key of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
      const step = /^[A-Za-z_$][\w$]*$/.test(key) ? `${at}.${key}` : `${at}[${JSON.stringify(key)}]`;
      if (!(key in a) || !(key in b)) return step;
      const found = firstDifference(a[key], b[key], step);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  return at;
}
