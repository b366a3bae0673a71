import { KeelError } from '@keel/kit/core';
import { replyFromRecord } from '../engine/stages/record.js';
import type { ModelCallRecord } from '../store/taskStore.js';
import type { Model, ModelReply } from './model.js';

/**
 * A model that answers each call with the reply recorded for the same step of a task, and calls no
 * provider. A call at a step with no record, from another agent than the recorded one, or whose
 * record was purged, is a divergence and throws — a replay never makes up an answer.
 */
export function createReplayModel(records: readonly ModelCallRecord[], name = 'replay'): Model {
  const byStep = new Map(records.map((record) => [record.step, record]));
  return {
    provider: 'replay',
    model: name,
    async generate(request, context): Promise<ModelReply> {
      if (request.signal.aborted) throw request.signal.reason;
      const record = byStep.get(context.step);
      if (record === undefined)
        throw new KeelError(
          'NOT_FOUND',
          `replay diverged at step ${context.step}: the recording has no model call there`,
          {
            hint: `the recording has steps 1..${records.length}`,
          },
        );
      if (record.agent !== context.agent)
        throw new KeelError(
          'CONFLICT',
          `replay diverged at step ${context.step}: the ${context.agent} agent asked, the recording has the ${record.agent} agent`,
        );
      if (record.reply === null)
        throw new KeelError(
          'PRECONDITION_FAILED',
          `the model call of step ${context.step} was purged or failed; it cannot be replayed`,
        );
      return replyFromRecord(record);
    },
  };
}
