import { sha256Hex } from '@keel/kit/core';
import type { LimitKind } from '@keel/contracts';
import type { ApprovalGate } from '../../approvals/gate.js';
import type { Limits } from '../../config/schema.js';
import type { Clock } from '../../clock.js';
import type { Budget } from '../../limits/budget.js';
import type { ApprovalRecord, Fenced, TaskStore, TaskWriter } from '../../store/taskStore.js';
import { unfenced } from '../fence.js';
import { done, stopped, type Step, type Stop } from '../stop.js';

export interface EscalationContext {
  /** Read only: the question and its consumption go through `writer`. */
  store: TaskStore;
  writer: TaskWriter;
  onFenced: (fenced: Fenced) => void;
  taskId: string;
  clock: Clock;
  /** Limit kinds that wait for a human instead of stopping. */
  escalateLimits: readonly LimitKind[];
  /** Where questions for a human are counted, and how long they stay open. */
  gate: Pick<ApprovalGate, 'asked' | 'expiresMs'>;
  /** What the question shows: the limits and what the task used of them. */
  budget: Pick<Budget, 'limits' | 'used' | 'tokens'>;
  event: (type: string, data: unknown) => Promise<void>;
}

/** A human's continue: the approval that carried it and what they decided. */
export interface Continued {
  approval: ApprovalRecord;
  decision: { raise?: Partial<Limits>; hint?: string };
}

/**
 * A stop that may wait for a human instead: an escalated loop, or a limit listed in
 * `escalateLimits`. A continue decided for this step comes back as a value for the caller to apply
 * (raised limits, a hint) — also when a resumed task reaches the same step again; an abort ends
 * the task; otherwise the escalation is queued and the task ends `escalated`. Any other stop
 * stays the stop it is.
 */
export async function escalate(ctx: EscalationContext, stop: Stop, step: number): Promise<Step<Continued>> {
  const escalates =
    stop.status === 'escalated' ||
    (stop.status === 'limit' && stop.limit !== undefined && ctx.escalateLimits.includes(stop.limit));
  if (!escalates) return stopped(stop);
  const { store, taskId, budget } = ctx;
  const tool = `escalation:${stop.loop ?? stop.limit ?? 'stop'}`;
  const argsSha256 = sha256Hex(`${step}`);
  const now = new Date(ctx.clock.now());
  const continued = unfenced(
    await ctx.writer.consumeApproval(tool, argsSha256, `${step}:escalation`, now),
    ctx.onFenced,
  );
  if (continued !== undefined)
    return done({ approval: continued, decision: (continued.decision ?? {}) as Continued['decision'] });
  const aborted = (await store.listApprovals({ taskId })).findLast(
    (a) => a.kind === 'escalation' && a.tool === tool && a.argsSha256 === argsSha256 && a.status === 'denied',
  );
  if (aborted !== undefined)
    return stopped({
      status: 'failed',
      message: `aborted by ${aborted.decidedBy ?? 'a human'} (${aborted.id})${aborted.decisionReason ? `: ${aborted.decisionReason}` : ''}`,
    });
  const approval = unfenced(
    await ctx.writer.requestApproval(
      {
        id: `es-${sha256Hex(`${taskId}\n${tool}\n${step}\n${now.getTime()}`).slice(0, 10)}`,
        taskId,
        kind: 'escalation',
        agent: 'orchestrator',
        step,
        callIndex: 0,
        server: null,
        tool,
        argsSha256,
        arguments: { limits: budget.limits, used: budget.used },
        reasons: [stop.message],
        summary: `${stop.message} (step ${step}; used ${budget.used.steps} steps, ${budget.tokens} tokens, ${budget.used.toolCalls} tool calls, $${budget.used.costUsd.toFixed(4)})`,
        requestedAt: now.toISOString(),
        expiresAt: new Date(now.getTime() + ctx.gate.expiresMs).toISOString(),
      },
      now,
    ),
    ctx.onFenced,
  );
  ctx.gate.asked++;
  await ctx.event('escalation_requested', { approval: approval.id, stop });
  return stopped({
    ...stop,
    status: 'escalated',
    message: `${stop.message} — escalated as ${approval.id}: keel continue ${approval.id} [--raise LIMIT=N] [--hint TEXT], or keel abort ${approval.id}`,
  });
}
