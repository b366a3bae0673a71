import type { ApprovalGate, GateCall, GateResult, PlanFacts } from '../../approvals/gate.js';
import { done, stopped, type Step } from '../stop.js';
import type { ToolSlot } from './call.js';

export interface GateContext {
  gate: Pick<ApprovalGate, 'check' | 'requireApproval'>;
  /** The plans the task made: an approved deploy's token is bound to its plan. */
  plans: ReadonlyMap<string, PlanFacts>;
  event: (type: string, data: unknown) => Promise<void>;
  /** Tells the terminal (a `note` line) why a call waits or was refused. */
  progress: (agent: string, detail: string) => void;
}

/**
 * The approval gate: an irreversible call runs only with a human's approval, consumed once; a
 * waiting or refused call ends the task here, recorded. Returns what the gate adds to the call's
 * `_meta` (a deploy's approval token).
 */
export async function passGate(ctx: GateContext, slot: ToolSlot): Promise<Step<Record<string, unknown>>> {
  return outcome(ctx, slot, await ctx.gate.check(gateCall(ctx, slot)));
}

/**
 * A server answered APPROVAL_REQUIRED to a call sent without an approval: never a question for
 * the model, the call waits for a human like any irreversible one.
 */
export async function requireApproval(
  ctx: GateContext,
  slot: ToolSlot,
  serverMessage: string,
): Promise<Step<Record<string, unknown>>> {
  return outcome(ctx, slot, await ctx.gate.requireApproval(gateCall(ctx, slot), serverMessage));
}

function gateCall(ctx: GateContext, slot: ToolSlot): GateCall {
  const planId = slot.args['planId'];
  return {
    agent: slot.agent,
    step: slot.step,
    callIndex: slot.callIndex,
    server: slot.tool.server,
    tool: slot.tool.name,
    args: slot.args,
    classification: slot.classification,
    plan: typeof planId === 'string' ? ctx.plans.get(planId) : undefined,
  };
}

async function outcome(
  ctx: GateContext,
  slot: ToolSlot,
  gate: GateResult,
): Promise<Step<Record<string, unknown>>> {
  if (!gate.ok) {
    await ctx.event(gate.stop.status === 'waiting' ? 'approval_requested' : 'approval_refused', {
      approval: gate.approval?.id,
      tool: slot.tool.name,
      reasons: gate.approval?.reasons,
      stop: gate.stop,
    });
    ctx.progress(slot.agent, gate.stop.message);
    return stopped(gate.stop);
  }
  if (gate.approval !== undefined)
    await ctx.event('approval_consumed', {
      approval: gate.approval.id,
      tool: slot.tool.name,
      by: gate.approval.decidedBy,
      slot: `${slot.step}:${slot.callIndex}`,
    });
  return done(gate.meta);
}
