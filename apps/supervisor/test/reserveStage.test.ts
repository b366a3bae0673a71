import type { LimitKind } from '@keel/contracts';
import { describe, expect, it, onTestFinished } from 'vitest';
import { tempDir } from '@keel/testing';
import { ApprovalGate } from '../src/approvals/gate.js';
import { defaultLimits } from '../src/config/schema.js';
import { escalate, type EscalationContext } from '../src/engine/stages/escalate.js';
import { createRecorder } from '../src/engine/stages/record.js';
import { reserveOrEscalate, type Escalate } from '../src/engine/stages/reserve.js';
import { done } from '../src/engine/stop.js';
import { Budget } from '../src/limits/budget.js';
import { createSqliteTaskStore } from '../src/store/sqliteTaskStore.js';
import { ownerWriter } from './helpers.js';

const onFenced = () => undefined;
const start = Date.parse('2026-12-01T09:00:00Z');
const step = 4;

/**
 * A task's budget with one tool call left to spend, and the escalation stage on a real store:
 * `escalateNow` is what the session does with a human's continue (raise what they raised).
 */
async function setup(escalateLimits: readonly LimitKind[]) {
  const store = createSqliteTaskStore(await tempDir('keel-reserve-'));
  const writer = await ownerWriter(store, 't-1');
  onTestFinished(() => store.close());
  const clock = { now: () => start };
  const budget = new Budget({ ...defaultLimits, toolCalls: 1 }, clock);
  const gate = new ApprovalGate({
    store,
    writer,
    onFenced,
    taskId: 't-1',
    config: { expiresHours: 24, preApproved: [], trustedTools: [] },
    signer: undefined,
    clock,
  });
  const recorder = createRecorder({ writer, taskId: 't-1', resume: undefined, clock, onFenced });
  const ctx: EscalationContext = {
    store,
    writer,
    onFenced,
    taskId: 't-1',
    clock,
    escalateLimits,
    gate,
    budget,
    event: (type, data) => recorder.event(type, data),
  };
  const escalateNow: Escalate = async (stop) => {
    const escalation = await escalate(ctx, stop, step);
    if (!escalation.ok) return escalation;
    if (escalation.value.decision.raise !== undefined) budget.raise(escalation.value.decision.raise);
    return done(true);
  };
  const retries: number[] = [];
  const reserve = () =>
    reserveOrEscalate(
      () => budget.reserveToolCall(),
      escalateNow,
      () => retries.push(budget.used.toolCalls),
    );
  expect(budget.reserveToolCall()).toEqual({ ok: true, reservation: true });
  return { store, budget, gate, reserve, retries };
}

const escalatedAs = (id: string) =>
  `tool-call limit of 1 reached — escalated as ${id}: keel continue ${id} [--raise LIMIT=N] [--hint TEXT], or keel abort ${id}`;

describe('reserve, else escalate, reserve again', () => {
  it('a call the limits refuse waits for a human, and goes on once they raise the limit', async () => {
    const { store, budget, gate, reserve, retries } = await setup(['tool_calls']);
    const asked = await reserve();
    const [approval] = await store.listApprovals({ taskId: 't-1' });
    expect(asked).toEqual({
      ok: false,
      stop: { status: 'escalated', limit: 'tool_calls', message: escalatedAs(approval!.id) },
    });
    expect(approval).toMatchObject({
      kind: 'escalation',
      status: 'pending',
      agent: 'orchestrator',
      step,
      tool: 'escalation:tool_calls',
      reasons: ['tool-call limit of 1 reached'],
      summary: 'tool-call limit of 1 reached (step 4; used 0 steps, 0 tokens, 1 tool calls, $0.0000)',
      requestedAt: '2026-12-01T09:00:00.000Z',
      expiresAt: '2026-12-02T09:00:00.000Z',
    });
    expect(gate.asked).toBe(1);
    expect((await store.listEvents('t-1')).map((e) => e.type)).toEqual(['escalation_requested']);
    expect(retries).toEqual([]);

    const decided = await store.decideApproval(approval!.id, {
      approve: true,
      by: 'alice',
      reason: null,
      decision: { raise: { toolCalls: 2 } },
      now: new Date(start + 60_000),
    });
    expect(decided.ok).toBe(true);
    expect(await reserve()).toEqual({ ok: true, value: true });
    // The second try ran after the raise and before the reservation it made.
    expect(retries).toEqual([1]);
    expect(budget.used.toolCalls).toBe(2);
    expect(budget.limits.toolCalls).toBe(2);
    expect((await store.getApproval(approval!.id))?.status).toBe('consumed');
  });

  it('a limit that policy does not escalate stops the task without asking anyone', async () => {
    const { store, budget, gate, reserve, retries } = await setup(['tokens']);
    expect(await reserve()).toEqual({
      ok: false,
      stop: { status: 'limit', limit: 'tool_calls', message: 'tool-call limit of 1 reached' },
    });
    expect(await store.listApprovals({ taskId: 't-1' })).toEqual([]);
    expect([gate.asked, retries, budget.used.toolCalls]).toEqual([0, [], 1]);
  });

  it('a continue that leaves the limit where it was stops at the second refusal', async () => {
    const { store, reserve, retries } = await setup(['tool_calls']);
    await reserve();
    const [approval] = await store.listApprovals({ taskId: 't-1' });
    await store.decideApproval(approval!.id, {
      approve: true,
      by: 'alice',
      reason: null,
      decision: { hint: 'try harder' },
      now: new Date(start + 60_000),
    });
    expect(await reserve()).toEqual({
      ok: false,
      stop: { status: 'limit', limit: 'tool_calls', message: 'tool-call limit of 1 reached' },
    });
    expect(retries).toEqual([1]);
  });

  it('an abort ends the task failed, naming who aborted it and why', async () => {
    const { store, reserve, retries } = await setup(['tool_calls']);
    await reserve();
    const [approval] = await store.listApprovals({ taskId: 't-1' });
    await store.decideApproval(approval!.id, {
      approve: false,
      by: 'bob',
      reason: 'wrong approach',
      now: new Date(start + 60_000),
    });
    expect(await reserve()).toEqual({
      ok: false,
      stop: { status: 'failed', message: `aborted by bob (${approval!.id}): wrong approach` },
    });
    expect(retries).toEqual([]);
  });
});
