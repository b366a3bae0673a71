import { describe, expect, it, onTestFinished } from 'vitest';
import { tempDir } from '@keel/testing';
import { ApprovalGate, type GateCall } from '../../src/approvals/gate.js';
import { createSqliteTaskStore } from '../../src/store/sqliteTaskStore.js';
import { ownerWriter } from '../helpers.js';
import type { AttackMeta } from './world.js';

export const attacks: AttackMeta[] = [
  {
    id: 'approval-hash-drops-a-key',
    issue: 19,
    item: 5,
    onMain: 'failed',
    attack:
      'a model adds an own "__proto__" member to the arguments of a call a human approved; canonicalisation assigned it as a prototype and dropped it, so the changed call hashed the same and consumed the approval',
    guarantee: 'the canonical arguments hashed are exactly the arguments sent: every own key is kept',
    benign: 'the very call the human approved runs, once',
  },
];

async function gateOnDisk() {
  const store = createSqliteTaskStore(await tempDir('keel-attack-approvals-'));
  onTestFinished(() => store.close());
  const gate = new ApprovalGate({
    store,
    writer: await ownerWriter(store, 't-1'),
    onFenced: () => undefined,
    taskId: 't-1',
    config: { expiresHours: 24, preApproved: [], trustedTools: [] },
    signer: undefined,
    clock: { now: () => Date.parse('2026-12-01T09:00:00Z') },
  });
  return { store, gate };
}

const push = (args: Record<string, unknown>): GateCall => ({
  agent: 'coding',
  step: 3,
  callIndex: 0,
  server: 'git',
  tool: 'git_push',
  args,
  classification: { irreversible: true, reason: 'a push publishes commits' },
  plan: undefined,
});

describe('approvals are bound to exactly the arguments sent (issue 19, item 5)', () => {
  it('attack: an own __proto__ member added to approved arguments does not ride on the approval', async () => {
    const { store, gate } = await gateOnDisk();
    const asked = await gate.check(push({ remote: 'origin', branch: 'main' }));
    await store.decideApproval(asked.approval!.id, {
      approve: true,
      by: 'alice',
      reason: null,
      now: new Date('2026-12-01T09:01:00Z'),
    });
    // What a model writes is JSON: JSON.parse makes "__proto__" an own member, sent on the wire.
    const changed = JSON.parse('{"remote":"origin","branch":"main","__proto__":{"force":true}}') as Record<
      string,
      unknown
    >;
    expect(JSON.stringify(changed)).toBe('{"remote":"origin","branch":"main","__proto__":{"force":true}}');
    const result = await gate.check(push(changed));
    expect([result.ok, result.ok ? undefined : result.stop.status]).toEqual([false, 'waiting']);
    // Asked at the same instant (a fixed clock): in status order.
    const asked2 = (await store.listApprovals({ taskId: 't-1' })).map((a) => [a.status, a.arguments]);
    expect(asked2.sort((a, b) => String(a[0]).localeCompare(String(b[0])))).toEqual([
      ['approved', { remote: 'origin', branch: 'main' }],
      ['pending', changed],
    ]);
  });

  it('benign twin: the approved call itself passes, once', async () => {
    const { store, gate } = await gateOnDisk();
    const args = { remote: 'origin', branch: 'main' };
    const asked = await gate.check(push(args));
    await store.decideApproval(asked.approval!.id, {
      approve: true,
      by: 'alice',
      reason: null,
      now: new Date('2026-12-01T09:01:00Z'),
    });
    const result = await gate.check(push({ ...args }));
    expect([result.ok, result.approval?.id]).toEqual([true, asked.approval!.id]);
  });
});
