import { createPublicKey } from 'node:crypto';
import { describe, expect, it, onTestFinished } from 'vitest';
import { generateApprovalKeyPair, parsePrivateKey, signApproval, verifyApproval } from '@keel/kit/approval';
import { tempDir } from '@keel/testing';
import { ApprovalGate, type GateCall } from '../src/approvals/gate.js';
import { createSqliteTaskStore } from '../src/store/sqliteTaskStore.js';
import type { TaskStore } from '../src/store/taskStore.js';
import { ownerWriter } from './helpers.js';

const onFenced = () => undefined;
const config = {
  expiresHours: 24,
  preApproved: [{ tool: 'git_push' }],
  trustedTools: ['list_environments'],
};

async function setup(now = { value: Date.parse('2026-11-30T10:00:00Z') }) {
  const store = createSqliteTaskStore(await tempDir('keel-approvals-'));
  const writer = await ownerWriter(store, 't-1');
  onTestFinished(() => store.close());
  const keys = generateApprovalKeyPair();
  const privateKey = parsePrivateKey(keys.privateKeyPem, 'test key');
  const gate = new ApprovalGate({
    store,
    writer,
    onFenced,
    taskId: 't-1',
    config,
    signer: (payload) => signApproval(payload, privateKey),
    clock: { now: () => now.value },
  });
  return { store, writer, gate, now, publicKey: createPublicKey(keys.publicKeyPem) };
}

const push = (args: Record<string, unknown>, step = 5, callIndex = 0): GateCall => ({
  agent: 'coding',
  step,
  callIndex,
  server: 'git',
  tool: 'git_push',
  args,
  classification: { irreversible: true, reason: 'a push publishes commits' },
  plan: undefined,
});

async function approve(store: TaskStore, id: string, by = 'alice', at = '2026-11-30T10:01:00Z') {
  const decision = await store.decideApproval(id, { approve: true, by, reason: null, now: new Date(at) });
  expect(decision.ok).toBe(true);
}

describe('the approval gate', () => {
  it('lets a reversible call through without asking', async () => {
    const { gate, store } = await setup();
    const result = await gate.check({
      ...push({}),
      tool: 'git_add',
      classification: { irreversible: false },
    });
    expect(result).toEqual({ ok: true, meta: {}, approval: undefined });
    expect(await store.listApprovals()).toEqual([]);
  });

  it('pre-approves by policy only while the task has read nothing untrusted', async () => {
    const { gate } = await setup();
    expect((await gate.check(push({ remote: 'origin', branch: 'keel/t-1' }))).ok).toBe(true);
    expect(gate.observeResult('list_environments', 2)).toBe(false);
    expect((await gate.check(push({ remote: 'origin', branch: 'keel/t-1' }))).ok).toBe(true);
    expect(gate.observeResult('read_file', 3)).toBe(true);
    const tainted = await gate.check(push({ remote: 'origin', branch: 'keel/t-1' }));
    expect(tainted.ok === false && tainted.stop.status).toBe('waiting');
    expect(tainted.approval?.reasons).toEqual([
      'a push publishes commits',
      'the task has read untrusted content (read_file at step 3), so no policy pre-approves it',
    ]);
  });

  it('binds an approval to the exact arguments, consumes it once, and lets a resumed run of the same call slot use it again', async () => {
    const { gate, store } = await setup();
    gate.observeResult('read_file', 1);
    const args = { remote: 'origin', branch: 'main' };
    const asked = await gate.check(push(args));
    expect(asked.ok).toBe(false);
    const id = asked.approval!.id;
    // Asking again for the same call while it waits finds the same request.
    expect((await gate.check(push(args))).approval?.id).toBe(id);
    await approve(store, id);

    // Changed arguments are another call: they wait for their own approval.
    const other = await gate.check(push({ remote: 'origin', branch: 'release' }));
    expect(other.ok).toBe(false);
    expect(other.approval?.id).not.toBe(id);

    const granted = await gate.check(push(args, 5, 0));
    expect(granted).toMatchObject({
      ok: true,
      meta: {},
      approval: { id, status: 'consumed', consumedBy: '5:0' },
    });
    // The same call slot again (a resumed task repeating it) may use it; the server's idempotency
    // key makes that call a replay. Any other slot may not.
    expect((await gate.check(push(args, 5, 0))).ok).toBe(true);
    const later = await gate.check(push(args, 9, 0));
    expect(later.ok).toBe(false);
    expect(later.approval?.id).not.toBe(id);
  });

  it('a denied call stops the task with the reason', async () => {
    const { gate, store } = await setup();
    gate.observeResult('read_file', 1);
    const asked = await gate.check(push({ remote: 'origin' }));
    const denied = await store.decideApproval(asked.approval!.id, {
      approve: false,
      by: 'bob',
      reason: 'not on a Friday',
      now: new Date('2026-11-30T10:02:00Z'),
    });
    expect(denied.ok).toBe(true);
    const result = await gate.check(push({ remote: 'origin' }));
    expect(result.ok === false && result.stop).toEqual({
      status: 'failed',
      message: `git_push was denied by bob (${asked.approval!.id}): not on a Friday`,
    });
  });

  it('a decision is made once, and not after the request expired', async () => {
    const { gate, store } = await setup();
    gate.observeResult('read_file', 1);
    const first = (await gate.check(push({ remote: 'a' }))).approval!;
    await approve(store, first.id);
    const second = await store.decideApproval(first.id, {
      approve: false,
      by: 'mallory',
      reason: 'changed my mind',
      now: new Date('2026-11-30T10:03:00Z'),
    });
    expect(second).toMatchObject({
      ok: false,
      code: 'ALREADY_DECIDED',
      message: `approval ${first.id} is already approved (by alice)`,
    });

    const late = (await gate.check(push({ remote: 'b' }))).approval!;
    const expired = await store.decideApproval(late.id, {
      approve: true,
      by: 'alice',
      reason: null,
      now: new Date('2026-12-01T10:00:01Z'),
    });
    expect(expired).toMatchObject({
      ok: false,
      code: 'EXPIRED',
      message: `approval ${late.id} expired at 2026-12-01T10:00:00.000Z`,
    });
    expect((await store.getApproval(late.id))?.status).toBe('expired');
  });

  it('turns an approved deploy into a signed token the deploy server accepts, in _meta only', async () => {
    const { gate, store, publicKey } = await setup();
    gate.observeResult('read_file', 1);
    const plan = { planId: 'plan-abc', planHash: 'f'.repeat(64), environment: 'production' };
    const call: GateCall = {
      ...push({ planId: 'plan-abc' }),
      server: 'deploy',
      tool: 'apply_deploy',
      classification: { irreversible: true, reason: "environment 'production' requires approval" },
      plan,
    };
    const asked = await gate.check(call);
    expect(asked.approval?.summary).toBe('apply_deploy of plan plan-abc (hash ffffffffffff…) to production');
    await approve(store, asked.approval!.id, 'alice');
    const granted = await gate.check(call);
    expect(granted.ok).toBe(true);
    const token = granted.ok ? granted.meta['keel/approval'] : undefined;
    const verified = verifyApproval(token, [publicKey], {
      tool: 'apply_deploy',
      environment: 'production',
      planHash: plan.planHash,
      now: Date.parse('2026-11-30T10:05:00Z'),
    });
    expect(verified.ok && { approver: verified.payload.approver, planId: verified.payload.planId }).toEqual({
      approver: 'alice',
      planId: 'plan-abc',
    });
  });

  it('a server that answers APPROVAL_REQUIRED turns the call into a durable approval, gated from then on', async () => {
    const { gate, store, writer } = await setup();
    const plan = { planId: 'plan-x', planHash: 'a'.repeat(64), environment: 'staging' };
    const call: GateCall = {
      ...push({ planId: 'plan-x' }),
      server: 'deploy',
      tool: 'apply_deploy',
      classification: { irreversible: false },
      plan,
    };
    // Classified reversible: the gate lets it through, and the server refuses it.
    expect((await gate.check(call)).ok).toBe(true);
    const asked = await gate.requireApproval(call, "environment 'staging' requires approval");
    expect(asked.ok === false && asked.stop.status).toBe('waiting');
    expect(asked.approval?.reasons[0]).toBe(
      "the server requires a human's approval: environment 'staging' requires approval",
    );
    await approve(store, asked.approval!.id);

    // A later run (a fresh gate, as after a restart) still gates the same call and sends the token.
    const resumed = new ApprovalGate({
      store,
      writer,
      onFenced,
      taskId: 't-1',
      config,
      signer: () => 'signed-token',
      clock: { now: () => Date.parse('2026-11-30T10:05:00Z') },
    });
    expect(await resumed.check(call)).toMatchObject({ ok: true, meta: { 'keel/approval': 'signed-token' } });
  });
});
