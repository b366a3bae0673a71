import { canonicalJson, sha256Hex } from '@keel/kit/core';
import type { Loops } from '../../config/schema.js';
import type { Budget } from '../../limits/budget.js';
import type { LoopDetector, LoopFinding } from '../../limits/loops.js';
import type { CatalogTool } from '../../mcp/servers.js';
import type { ModelToolCall } from '../../models/model.js';
import type { Stop } from '../stop.js';
import type { AgentRun } from './call.js';
import { reserveOrEscalate, type Escalate } from './reserve.js';

export interface AdmitContext {
  /** True once the task's signal fired (a kill, the deadline); a kill request in the store counts. */
  killed: () => Promise<boolean>;
  /** Why the task's signal fired, as a stop. */
  abortStop: () => Stop;
  budget: Pick<Budget, 'reserveToolCall'>;
  escalate: Escalate;
  loops: LoopDetector;
  onLoop: Loops['onLoop'];
  /** Every tool of the task's servers: tells a tool out of the agent's scope from an unknown one. */
  catalog: ReadonlyMap<string, CatalogTool>;
}

/** A call the harness answers itself, as a tool error the model can act on. */
export interface Refusal {
  code: 'UNKNOWN_TOOL' | 'OUT_OF_SCOPE' | 'INVALID_ARGUMENT';
  message: string;
  hint: string;
}

export type Admission =
  | { kind: 'call'; tool: CatalogTool; args: Record<string, unknown> }
  | { kind: 'refused'; refusal: Refusal }
  | { kind: 'stopped'; stop: Stop };

/**
 * What every tool call passes before anything else, in this order: the kill check, a reservation
 * against the tool-call and wall-clock limits, the loop check (both may wait for a human), the
 * agent's scope, and arguments that are one JSON object. A refused call has used its reservation.
 */
export async function admit(
  ctx: AdmitContext,
  agent: Pick<AgentRun, 'role' | 'scope'>,
  call: ModelToolCall,
): Promise<Admission> {
  const stop = (stopped: Stop): Admission => ({ kind: 'stopped', stop: stopped });
  const refuse = (refusal: Refusal): Admission => ({ kind: 'refused', refusal });
  if (await ctx.killed()) return stop(ctx.abortStop());
  const reserved = await reserveOrEscalate(() => ctx.budget.reserveToolCall(), ctx.escalate);
  if (!reserved.ok) return stop(reserved.stop);
  const loop = checkLoop(ctx.loops, call);
  if (loop !== undefined) {
    const escalation = await ctx.escalate(loopStop(ctx.onLoop, loop));
    if (!escalation.ok) return stop(escalation.stop);
    // The continue reset the history: this call starts it again.
    checkLoop(ctx.loops, call);
  }
  const tool = agent.scope.get(call.name);
  if (tool === undefined) {
    const known = ctx.catalog.get(call.name);
    const hint = `use one of: ${[...agent.scope.keys()].join(', ')}`;
    return refuse(
      known === undefined
        ? { code: 'UNKNOWN_TOOL', message: `there is no tool named '${call.name}'`, hint }
        : {
            code: 'OUT_OF_SCOPE',
            message: `'${call.name}' (server ${known.server}) is not among the ${agent.role} agent's tools`,
            hint,
          },
    );
  }
  if (call.arguments === null || typeof call.arguments !== 'object' || Array.isArray(call.arguments))
    return refuse({
      code: 'INVALID_ARGUMENT',
      message: `the arguments of ${call.name} are not a JSON object`,
      hint: 'send the arguments as one JSON object matching the tool schema',
    });
  return { kind: 'call', tool, args: call.arguments as Record<string, unknown> };
}

/**
 * The loop check, for calls the harness answers itself (final tools) as much as for server calls:
 * a call that would not complete a loop joins the history.
 */
export function checkLoop(loops: LoopDetector, call: ModelToolCall): LoopFinding | undefined {
  const signature = sha256Hex(canonicalJson({ name: call.name, args: call.arguments }));
  const finding = loops.check(signature, call.name);
  if (finding === undefined) loops.record(signature, call.name);
  return finding;
}

/** A loop as a stop: one a human should look at, or a plain limit, as policy's `onLoop` says. */
export function loopStop(onLoop: Loops['onLoop'], finding: LoopFinding): Stop {
  return onLoop === 'escalate'
    ? {
        status: 'escalated',
        loop: finding.loop,
        message: `loop detected: ${finding.message}; a human should look at the task before it goes on`,
      }
    : { status: 'limit', loop: finding.loop, message: `loop detected: ${finding.message}` };
}
