import { canonicalJson } from '@keel/kit/core';
import type { Model, ModelReply } from '../models/model.js';
import type { EventRecord, ModelCallRecord, ToolCallRecord } from '../store/taskStore.js';
import { replyFromRecord } from './stages/record.js';

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
  readonly toolSlots: ReadonlyMap<string, ToolCallRecord>;
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
    this.toolSlots = new Map(
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

/** A model that answers recorded steps from their records and asks the real model only after them. */
export function withRecordedReplies(model: Model, records: readonly ModelCallRecord[]): Model {
  const byStep = new Map(records.filter((r) => r.reply !== null).map((r) => [r.step, r]));
  return {
    provider: model.provider,
    model: model.model,
    async generate(request, context): Promise<ModelReply> {
      const record = byStep.get(context.step);
      if (record === undefined || record.agent !== context.agent) return model.generate(request, context);
      return replyFromRecord(record);
    },
  };
}
