import { describe, expect, it, onTestFinished } from 'vitest';
import { tempDir } from '@keel/testing';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { resumeTask, runTask } from '../src/engine/runTask.js';
import { createPostgresTaskStore } from '../src/store/postgresTaskStore.js';
import { freshDatabase, testDatabaseUrl } from './postgres.js';
import { createHarness, task as task2 } from './helpers.js';
import { createSqliteTaskStore } from '../src/store/sqliteTaskStore.js';
import type {
  ApprovalRequest,
  ModelCallRecord,
  TaskRecord,
  TaskStore,
  ToolCallRecord,
} from '../src/store/taskStore.js';

/**
 * One suite, every backend: what the engine relies on of a task store. PostgreSQL runs when
 * KEEL_TEST_DATABASE_URL names a server (.ci/run starts one); under CI its absence fails the run.
 */
const databaseUrl = testDatabaseUrl;

const backends: Array<{ name: string; open: () => Promise<() => Promise<TaskStore>>; skip?: string }> = [
  {
    name: 'sqlite',
    open: async () => {
      const dir = await tempDir('keel-store-');
      return async () => createSqliteTaskStore(dir);
    },
  },
  {
    name: 'postgres',
    ...(databaseUrl === undefined
      ? { skip: 'KEEL_TEST_DATABASE_URL is not set (no PostgreSQL server for this run)' }
      : {}),
    open: async () => {
      const url = await freshDatabase();
      return () => createPostgresTaskStore(url);
    },
  },
];

const task = (id: string, createdAt: string): TaskRecord => ({
  id,
  type: 'bugfix',
  title: `task ${id}`,
  mode: 'orchestrated',
  status: 'running',
  createdAt,
  endedAt: null,
  configHash: 'c'.repeat(64),
  spec: { type: 'bugfix', nested: { list: [1, 2] } },
  startingState: { git: { head: 'a'.repeat(40) } },
  run: null,
});

const second = (s: number) => new Date(Date.UTC(2026, 10, 30, 0, 0, s));

const worker = {
  pid: 1,
  startTime: '1',
  host: 'h',
  serverPids: [],
  worker: 'w1',
  heartbeatAt: '2026-11-30T00:00:00.000Z',
};

const modelCall = (taskId: string, step: number): ModelCallRecord => ({
  taskId,
  step,
  agent: 'coding',
  provider: 'playbook',
  requestedModel: 'playbook',
  responseModel: 'playbook',
  systemSha256: 's'.repeat(64),
  request: { messages: [{ role: 'user', content: `step ${step}` }] },
  raw: { ok: true },
  reply: { text: 'hello' },
  reservedInputTokens: 10,
  reservedOutputTokens: 20,
  inputTokens: 5,
  outputTokens: 6,
  costUsd: 0.25,
  latencyMs: 1.5,
  startedAt: '2026-11-30T00:00:00.000Z',
  error: null,
});

const toolCall = (taskId: string, step: number): ToolCallRecord => ({
  taskId,
  step,
  callIndex: 0,
  agent: 'coding',
  server: 'git',
  tool: 'git_status',
  idempotencyKey: null,
  arguments: {},
  result: { text: 'clean' },
  resultBytes: 5,
  latencyMs: 1,
  outcome: 'ok',
  errorCode: null,
  irreversible: false,
  effect: null,
  startedAt: '2026-11-30T00:00:00.000Z',
});

const approvalRequest = (taskId: string): ApprovalRequest => ({
  id: 'ap-0000000100',
  taskId,
  kind: 'tool',
  agent: 'deploy',
  step: 2,
  callIndex: 0,
  server: 'deploy',
  tool: 'apply_deploy',
  argsSha256: 'e'.repeat(64),
  arguments: {},
  reasons: ['production requires approval'],
  summary: 'apply_deploy',
  requestedAt: '2026-11-30T00:00:22.000Z',
  expiresAt: '2026-11-30T01:00:00.000Z',
});

for (const backend of backends) {
  describe.skipIf(backend.skip !== undefined)(
    `task store: ${backend.name}${backend.skip ? ` (skipped: ${backend.skip})` : ''}`,
    () => {
      async function store(): Promise<{ store: TaskStore; reopen: () => Promise<TaskStore> }> {
        const opener = await backend.open();
        const s = await opener();
        onTestFinished(() => s.close());
        return { store: s, reopen: opener };
      }

      it('keeps tasks, lists them newest first with filters, and updates them', async () => {
        const { store: s } = await store();
        await s.createTask(task('t-1', '2026-11-30T00:00:01.000Z'));
        await s.createTask(task('t-2', '2026-11-30T00:00:02.000Z'));
        await s.updateTask('t-1', { status: 'succeeded', endedAt: '2026-11-30T00:01:00.000Z' });
        expect((await s.listTasks()).map((t) => [t.id, t.status])).toEqual([
          ['t-2', 'running'],
          ['t-1', 'succeeded'],
        ]);
        expect((await s.listTasks({ status: 'succeeded' })).map((t) => t.id)).toEqual(['t-1']);
        expect(await s.getTask('t-2')).toEqual(task('t-2', '2026-11-30T00:00:02.000Z'));
        expect(await s.getTask('nope')).toBeUndefined();
      });

      it('chains events across tasks and writers, names the first altered one, and survives a purge', async () => {
        const { store: s, reopen } = await store();
        const other = await reopen();
        onTestFinished(() => other.close());
        await Promise.all(
          Array.from({ length: 40 }, (_, i) =>
            (i % 2 === 0 ? s : other).appendEvent(
              `t-${i % 3}`,
              'step',
              { i },
              new Date(Date.UTC(2026, 10, 30, 0, 0, i)),
            ),
          ),
        );
        const verified = await s.verifyEvents();
        expect(verified).toEqual({ ok: true, events: 40 });
        expect(
          (await s.listEvents('t-0')).map((e) => (e.data as { i: number }).i).sort((a, b) => a - b),
        ).toEqual(Array.from({ length: 40 }, (_, i) => i).filter((i) => i % 3 === 0));
        await s.recordModelCall({
          taskId: 't-0',
          step: 1,
          agent: 'coding',
          provider: 'playbook',
          requestedModel: 'playbook',
          responseModel: 'playbook',
          systemSha256: 's'.repeat(64),
          request: { messages: [{ role: 'user', content: 'hi' }] },
          raw: { ok: true },
          reply: { text: 'hello' },
          reservedInputTokens: 10,
          reservedOutputTokens: 20,
          inputTokens: 5,
          outputTokens: 6,
          costUsd: 0.25,
          latencyMs: 1.5,
          startedAt: '2026-11-30T00:00:00.000Z',
          error: null,
        });
        expect(await s.purge(new Date('2026-12-01T00:00:00Z'), new Date('2026-12-02T00:00:00Z'))).toEqual({
          modelCalls: 1,
          toolCalls: 0,
        });
        expect(
          (await s.listModelCalls('t-0')).map((c) => [c.request, c.raw, c.reply, c.inputTokens, c.costUsd]),
        ).toEqual([[null, null, null, 5, 0.25]]);
        expect(await s.verifyEvents()).toEqual({ ok: true, events: 40 });
      });

      it('records tool calls whole', async () => {
        const { store: s } = await store();
        const record = {
          taskId: 't-1',
          step: 2,
          callIndex: 1,
          agent: 'coding',
          server: 'git',
          tool: 'git_commit',
          idempotencyKey: 'keel-abc',
          arguments: { message: 'x', all: true },
          result: { text: 'ok', structured: { sha: 'f'.repeat(40) }, error: null },
          resultBytes: 42,
          latencyMs: 3.25,
          outcome: 'ok' as const,
          errorCode: null,
          irreversible: false,
          effect: { computable: true, files: [] },
          startedAt: '2026-11-30T00:00:00.000Z',
        };
        const id = await s.recordToolCall(record);
        expect(await s.listToolCalls('t-1')).toEqual([{ ...record, id }]);
      });

      it('approvals: one open request per call, decided once, consumed once (again only by the same slot)', async () => {
        const { store: s } = await store();
        await s.createTask(task('t-1', '2026-11-30T00:00:00.000Z'));
        const request = {
          id: 'ap-0000000001',
          taskId: 't-1',
          kind: 'tool' as const,
          agent: 'deploy',
          step: 7,
          callIndex: 0,
          server: 'deploy',
          tool: 'apply_deploy',
          argsSha256: 'e'.repeat(64),
          arguments: { planId: 'plan-1' },
          reasons: ['production requires approval'],
          summary: 'apply_deploy of plan plan-1',
          requestedAt: '2026-11-30T10:00:00.000Z',
          expiresAt: '2026-11-30T11:00:00.000Z',
        };
        // The caller's clock decides what is open, never the store's wall clock: these dates are past.
        const now = new Date('2026-11-30T10:30:00.000Z');
        const [a, b] = await Promise.all([
          s.requestApproval(request, now),
          s.requestApproval({ ...request, id: 'ap-0000000002' }, now),
        ]);
        expect([a.id, b.id]).toEqual(['ap-0000000001', 'ap-0000000001']);
        expect((await s.listApprovals({ taskId: 't-1' })).length).toBe(1);
        const decisions = await Promise.all([
          s.decideApproval(a.id, { approve: true, by: 'alice', reason: null, now }),
          s.decideApproval(a.id, { approve: true, by: 'bob', reason: null, now }),
        ]);
        expect(decisions.filter((d) => d.ok).length).toBe(1);
        const consumed = await Promise.all([
          s.consumeApproval('t-1', 'apply_deploy', 'e'.repeat(64), '7:0', now),
          s.consumeApproval('t-1', 'apply_deploy', 'e'.repeat(64), '9:0', now),
        ]);
        const used = consumed.filter((c) => c !== undefined);
        expect(used.map((c) => [c.id, c.status])).toEqual([[a.id, 'consumed']]);
        // The slot that consumed it may use it again (a resumed task repeating its call); no other may.
        expect(
          (await s.consumeApproval('t-1', 'apply_deploy', 'e'.repeat(64), used[0]!.consumedBy!, now))?.id,
        ).toBe(a.id);
        expect(await s.consumeApproval('t-1', 'apply_deploy', 'e'.repeat(64), '11:0', now)).toBeUndefined();
      });

      it("judges an open request by the caller's clock, not the wall clock", async () => {
        const { store: s } = await store();
        await s.createTask(task('t-1', '2020-01-01T00:00:00.000Z'));
        const request = {
          id: 'ap-0000000010',
          taskId: 't-1',
          kind: 'tool' as const,
          agent: 'deploy',
          step: 3,
          callIndex: 0,
          server: 'deploy',
          tool: 'apply_deploy',
          argsSha256: 'd'.repeat(64),
          arguments: {},
          reasons: ['policy'],
          summary: 'apply_deploy',
          // Long past on any machine running this, and far in the future: neither may matter.
          requestedAt: '2020-01-01T10:00:00.000Z',
          expiresAt: '2020-01-02T10:00:00.000Z',
        };
        const first = await s.requestApproval(request, new Date('2020-01-01T10:00:00.000Z'));
        const again = await s.requestApproval(
          { ...request, id: 'ap-0000000011' },
          new Date('2020-01-02T09:59:59.000Z'),
        );
        const expired = await s.requestApproval(
          {
            ...request,
            id: 'ap-0000000012',
            requestedAt: '2020-01-02T10:00:00.000Z',
            expiresAt: '2020-01-03T10:00:00.000Z',
          },
          new Date('2020-01-02T10:00:00.000Z'),
        );
        expect([first.id, again.id, expired.id]).toEqual(['ap-0000000010', 'ap-0000000010', 'ap-0000000012']);
        const future = {
          ...request,
          id: 'ap-0000000020',
          argsSha256: 'f'.repeat(64),
          requestedAt: '2999-01-01T10:00:00.000Z',
          expiresAt: '2999-01-02T10:00:00.000Z',
        };
        const a = await s.requestApproval(future, new Date('2999-01-01T10:00:00.000Z'));
        const b = await s.requestApproval(
          { ...future, id: 'ap-0000000021' },
          new Date('2999-01-01T11:00:00.000Z'),
        );
        expect([a.id, b.id]).toEqual(['ap-0000000020', 'ap-0000000020']);
      });

      it('keeps owners, kill requests and the global stop', async () => {
        const { store: s } = await store();
        const owner = { pid: 1234, startTime: '99', host: 'h', serverPids: [5, 6] };
        expect(await s.claimOwner('t-1', null, owner)).toEqual({ ok: true, epoch: 1 });
        expect(await s.getOwner('t-1')).toEqual(owner);
        expect(await s.killRequested('t-1')).toBe(false);
        expect(await s.requestKill('t-1', new Date())).toBe(2);
        expect(await s.killRequested('t-1')).toBe(true);
        // A killed owner still says it has stopped: its release clears the record.
        expect(await s.writer('t-1', 1).releaseOwner()).toBe(true);
        expect(await s.getOwner('t-1')).toBeNull();
        // Taking a task over is compare-and-set: of two workers claiming a dead owner's task, one wins.
        const dead = {
          pid: 1,
          startTime: '1',
          host: 'h',
          serverPids: [],
          worker: 'w1',
          heartbeatAt: '2026-11-30T00:00:00.000Z',
        };
        expect(await s.claimOwner('t-2', null, dead)).toEqual({ ok: true, epoch: 1 });
        const claims = await Promise.all(
          ['w2', 'w3'].map((worker) =>
            s.claimOwner('t-2', dead, { ...dead, pid: worker === 'w2' ? 2 : 3, worker }),
          ),
        );
        // The winner moves the epoch on; the loser sees who won.
        const won = claims.findIndex((c) => c.ok);
        expect(claims[won]).toEqual({ ok: true, epoch: 2 });
        const winner = await s.getOwner('t-2');
        expect(winner?.worker).toBe(won === 0 ? 'w2' : 'w3');
        expect(claims[1 - won]).toEqual({ ok: false, current: winner });
        expect(await s.claimOwner('t-3', null, dead)).toEqual({ ok: true, epoch: 1 });
        expect(await s.claimOwner('t-3', null, dead)).toEqual({ ok: false, current: dead });
        // A queued task's claim moves it to starting in the same write, and only from queued.
        await s.createTask({ ...task('t-4', '2026-11-30T00:00:04.000Z'), status: 'queued' });
        const move = { from: 'queued', to: 'starting' } as const;
        expect(await s.claimOwner('t-4', null, owner, move)).toEqual({ ok: true, epoch: 1 });
        expect([(await s.getTask('t-4'))?.status, await s.getOwner('t-4')]).toEqual(['starting', owner]);
        await s.createTask({ ...task('t-5', '2026-11-30T00:00:05.000Z'), status: 'killed' });
        expect(await s.claimOwner('t-5', null, owner, move)).toEqual({
          ok: false,
          current: null,
          status: 'killed',
        });
        expect([(await s.getTask('t-5'))?.status, await s.getOwner('t-5')]).toEqual(['killed', null]);
        await s.setGlobalStop({ by: 'ops', at: '2026-11-30T00:00:00.000Z' });
        expect(await s.getGlobalStop()).toEqual({ by: 'ops', at: '2026-11-30T00:00:00.000Z' });
        await s.setGlobalStop(null);
        expect(await s.getGlobalStop()).toBeNull();
      });

      it('a takeover fences the stale owner: its event, model and tool call, status, approval and heartbeat are refused and leave no row', async () => {
        const { store: s } = await store();
        await s.createTask(task('t-1', '2026-11-30T00:00:00.000Z'));
        const w1 = { ...worker, pid: 11, worker: 'w1' };
        expect(await s.claimOwner('t-1', null, w1)).toEqual({ ok: true, epoch: 1 });
        const stale = s.writer('t-1', 1);
        expect(await stale.appendEvent('step', { n: 1 }, second(1))).toMatchObject({
          ok: true,
          value: { seq: 1 },
        });
        expect(await stale.recordModelCall(modelCall('t-1', 1))).toMatchObject({ ok: true });
        // w1 stalls; w2 finds its heartbeat stale and takes the task over.
        const w2 = { ...worker, pid: 22, worker: 'w2', heartbeatAt: '2026-11-30T00:00:20.000Z' };
        expect(await s.claimOwner('t-1', w1, w2)).toEqual({ ok: true, epoch: 2 });
        // w1 wakes up and carries on: every write it makes is refused.
        expect(await stale.appendEvent('step', { n: 2 }, second(21))).toEqual({
          ok: false,
          code: 'FENCED',
          taskId: 't-1',
          epoch: 1,
          current: 2,
          message: 'task t-1 is at epoch 2 (taken over or killed): the writer at epoch 1 may not write to it',
        });
        const refused = { ok: false, code: 'FENCED', taskId: 't-1', epoch: 1, current: 2 };
        expect(await stale.recordModelCall(modelCall('t-1', 2))).toMatchObject(refused);
        expect(await stale.recordToolCall(toolCall('t-1', 2))).toMatchObject(refused);
        expect(
          await stale.updateTask({ status: 'succeeded', endedAt: '2026-11-30T00:00:22.000Z' }),
        ).toMatchObject(refused);
        expect(await stale.requestApproval(approvalRequest('t-1'), second(22))).toMatchObject(refused);
        expect(await stale.consumeApproval('apply_deploy', 'e'.repeat(64), '2:0', second(22))).toMatchObject(
          refused,
        );
        expect(
          await stale.endRun('task_finished', { status: 'succeeded' }, second(22), {
            status: 'succeeded',
            endedAt: '2026-11-30T00:00:22.000Z',
          }),
        ).toMatchObject(refused);
        expect(await stale.renewOwner(second(23))).toMatchObject(refused);
        expect(await stale.updateOwner({ serverPids: [13] })).toMatchObject(refused);
        expect(await stale.releaseOwner()).toBe(false);
        // None of it landed, and w2's owner record (its heartbeat included) stands.
        expect((await s.listEvents('t-1')).map((e) => e.data)).toEqual([{ n: 1 }]);
        expect((await s.listModelCalls('t-1')).map((c) => [c.step, c.attempt])).toEqual([[1, 1]]);
        expect(await s.listToolCalls('t-1')).toEqual([]);
        expect([(await s.getTask('t-1'))?.status, (await s.getTask('t-1'))?.endedAt]).toEqual([
          'running',
          null,
        ]);
        expect(await s.listApprovals({ taskId: 't-1' })).toEqual([]);
        expect(await s.getOwnership('t-1')).toEqual({ owner: w2, epoch: 2, killRequested: false });
        // w2 writes, beats and, at the end, steps down.
        const owner = s.writer('t-1', 2);
        expect(await owner.appendEvent('step', { n: 2 }, second(24))).toMatchObject({
          ok: true,
          value: { seq: 2 },
        });
        expect(await owner.recordModelCall(modelCall('t-1', 2))).toMatchObject({ ok: true });
        expect(await owner.renewOwner(second(30))).toEqual({ ok: true, value: undefined });
        expect(await owner.updateOwner({ serverPids: [31, 32] })).toEqual({ ok: true, value: undefined });
        expect(await s.getOwner('t-1')).toEqual({
          ...w2,
          heartbeatAt: '2026-11-30T00:00:30.000Z',
          serverPids: [31, 32],
        });
        // Its end: the event and the status in one write.
        expect(
          await owner.endRun('task_finished', { status: 'succeeded' }, second(31), {
            status: 'succeeded',
            endedAt: '2026-11-30T00:00:31.000Z',
          }),
        ).toMatchObject({
          ok: true,
          value: { seq: 3, type: 'task_finished', data: { status: 'succeeded' } },
        });
        expect([(await s.getTask('t-1'))?.status, (await s.getTask('t-1'))?.endedAt]).toEqual([
          'succeeded',
          '2026-11-30T00:00:31.000Z',
        ]);
        // The end released the owner with it (a process killed right after its end leaves none).
        expect(await s.getOwnership('t-1')).toEqual({ owner: null, epoch: 2, killRequested: false });
        expect(await owner.releaseOwner()).toBe(false);
        expect(await owner.renewOwner(second(32))).toMatchObject({
          ok: false,
          current: 2,
          message: 'task t-1 has no owner to renew: it was released',
        });
        expect(await s.verifyEvents()).toEqual({ ok: true, events: 3 });
      });

      it('a kill fences the owner; the killed owner can still step down, and the killer writes the end', async () => {
        const { store: s } = await store();
        await s.createTask(task('t-1', '2026-11-30T00:00:00.000Z'));
        expect(await s.claimOwner('t-1', null, worker)).toEqual({ ok: true, epoch: 1 });
        const running = s.writer('t-1', 1);
        expect(await s.requestKill('t-1', second(5))).toBe(2);
        expect(await s.killRequested('t-1')).toBe(true);
        const refused = { ok: false, code: 'FENCED', taskId: 't-1', epoch: 1, current: 2 };
        expect(await running.appendEvent('step', { n: 1 }, second(6))).toMatchObject(refused);
        expect(await running.recordModelCall(modelCall('t-1', 1))).toMatchObject(refused);
        expect(await running.updateTask({ status: 'failed' })).toMatchObject(refused);
        expect(await running.renewOwner(second(6))).toMatchObject(refused);
        // Its owner record is still its own to clear: that is how the killer sees it stopped.
        expect(await s.getOwnership('t-1')).toEqual({ owner: worker, epoch: 2, killRequested: true });
        expect(await running.releaseOwner()).toBe(true);
        expect(await s.getOwnership('t-1')).toEqual({ owner: null, epoch: 2, killRequested: true });
        const killer = s.writer('t-1', 2);
        expect(await killer.appendEvent('task_finished', { status: 'killed' }, second(7))).toMatchObject({
          ok: true,
          value: { seq: 1 },
        });
        expect(
          await killer.updateTask({ status: 'killed', endedAt: '2026-11-30T00:00:07.000Z' }),
        ).toMatchObject({
          ok: true,
        });
        expect((await s.listEvents('t-1')).map((e) => e.type)).toEqual(['task_finished']);
        expect((await s.getTask('t-1'))?.status).toBe('killed');
        // Every kill request moves the epoch on, also for a task nobody claimed yet.
        expect(await s.requestKill('t-1', second(8))).toBe(3);
        expect(await s.requestKill('t-2', second(9))).toBe(1);
        expect(await s.getOwnership('t-2')).toEqual({ owner: null, epoch: 1, killRequested: true });
      });

      it('records each (task, step, attempt) once: a step recorded again is its next attempt, a repeat is refused', async () => {
        const { store: s } = await store();
        await s.recordModelCall({ ...modelCall('t-1', 1), error: 'HTTP 503' });
        await s.recordModelCall(modelCall('t-1', 1));
        await s.recordModelCall({ ...modelCall('t-1', 2), attempt: 1 });
        await expect(s.recordModelCall({ ...modelCall('t-1', 1), attempt: 2 })).rejects.toMatchObject({
          code: 'CONFLICT',
          message: 'task t-1 already has a model call recorded as step 1 attempt 2',
        });
        // Two processes that both believe they run the task record the same try: one lands.
        const both = await Promise.allSettled(
          ['a', 'b'].map((agent) => s.recordModelCall({ ...modelCall('t-1', 3), agent, attempt: 1 })),
        );
        expect(both.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
        expect(both.find((r) => r.status === 'rejected')).toMatchObject({ reason: { code: 'CONFLICT' } });
        expect(await s.claimOwner('t-1', null, worker)).toEqual({ ok: true, epoch: 1 });
        await expect(
          s.writer('t-1', 1).recordModelCall({ ...modelCall('t-1', 2), attempt: 1 }),
        ).rejects.toMatchObject({
          code: 'CONFLICT',
        });
        expect((await s.listModelCalls('t-1')).map((c) => [c.step, c.attempt, c.error])).toEqual([
          [1, 1, 'HTTP 503'],
          [1, 2, null],
          [2, 1, null],
          [3, 1, null],
        ]);
        await expect(s.writer('t-2', 1).recordModelCall(modelCall('t-1', 4))).rejects.toMatchObject({
          code: 'INVALID_ARGUMENT',
          message: 'a record of task t-1 was given to the writer of task t-2',
        });
      });

      it('summarises ended tasks for keel stats and keel eval, per type and window', async () => {
        const { store: s } = await store();
        const ended = async (
          id: string,
          type: string,
          status: TaskRecord['status'],
          at: string,
          ms: number,
          steps: number,
        ) => {
          await s.createTask({ ...task(id, at), type });
          const endedAt = new Date(Date.parse(at) + ms).toISOString();
          await s.updateTask(id, {
            status,
            endedAt,
            run: {
              version: 'taskRun.v1',
              id,
              type,
              mode: 'orchestrated',
              startedAt: at,
              endedAt,
              status,
              outcome: { message: status },
              steps,
              // A tenth of the input read from a prompt cache, on the bugfix tasks only.
              tokens: {
                input: steps * 100,
                output: steps,
                ...(type === 'bugfix' ? { cachedInput: steps * 10 } : {}),
              },
              costUsd: steps / 100,
              approvalsAsked: status === 'succeeded' ? 1 : 0,
              toolCalls: [{ server: 's', tool: 't', latencyMs: 1, ok: true, irreversible: false }],
            },
          });
        };
        await ended('a-1', 'bugfix', 'succeeded', '2026-11-30T00:00:01.000Z', 1500, 10);
        await ended('a-2', 'bugfix', 'failed', '2026-11-30T00:00:02.000Z', 500, 20);
        await ended('a-3', 'bugfix', 'succeeded', '2026-11-30T00:00:03.000Z', 2500, 30);
        await ended('b-1', 'docs', 'limit', '2026-11-30T00:00:04.000Z', 4000, 5);
        await ended('w-1', 'docs', 'waiting', '2026-11-30T00:00:05.000Z', 1, 99);
        // Escalated: waits for a person to continue or abort, so it has not ended either.
        await ended('e-1', 'docs', 'escalated', '2026-11-30T00:00:05.500Z', 1, 77);
        await s.createTask(task('r-1', '2026-11-30T00:00:06.000Z'));
        const rows = (await s.listTaskSummaries()).sort((x, y) => x.taskId.localeCompare(y.taskId));
        expect(
          rows.map((r) => [
            r.taskId,
            r.status,
            r.latencyMs,
            r.steps,
            r.inputTokens,
            r.outputTokens,
            r.cachedInputTokens,
            r.approvalsAsked,
            r.toolCalls,
          ]),
        ).toEqual([
          ['a-1', 'succeeded', 1500, 10, 1000, 10, 100, 1, 1],
          ['a-2', 'failed', 500, 20, 2000, 20, 200, 0, 1],
          ['a-3', 'succeeded', 2500, 30, 3000, 30, 300, 1, 1],
          ['b-1', 'limit', 4000, 5, 500, 5, 0, 0, 1],
        ]);
        expect(rows.map((r) => r.costUsd)).toEqual([0.1, 0.2, 0.3, 0.05]);
        const aggregates = await s.aggregateTaskSummaries({ since: '2026-11-30T00:00:02.000Z' });
        expect(
          aggregates.map((a) => ({
            ...a,
            costUsd: Number(a.costUsd.toFixed(10)),
            latenciesMs: [...a.latenciesMs],
            costsUsd: [...a.costsUsd],
          })),
        ).toEqual([
          {
            type: 'bugfix',
            tasks: 2,
            succeeded: 1,
            steps: 50,
            inputTokens: 5000,
            outputTokens: 50,
            cachedInputTokens: 500,
            costUsd: 0.5,
            latenciesMs: [500, 2500],
            costsUsd: [0.2, 0.3],
          },
          {
            type: 'docs',
            tasks: 1,
            succeeded: 0,
            steps: 5,
            inputTokens: 500,
            outputTokens: 5,
            cachedInputTokens: 0,
            costUsd: 0.05,
            latenciesMs: [4000],
            costsUsd: [0.05],
          },
        ]);
        expect(
          (await s.aggregateTaskSummaries({ type: 'bugfix', until: '2026-11-30T00:00:03.000Z' })).map((a) => [
            a.type,
            a.tasks,
            [...a.latenciesMs],
          ]),
        ).toEqual([['bugfix', 2, [500, 1500]]]);
      });
    },
  );
}

describe.skipIf(databaseUrl === undefined)('a task on the PostgreSQL store', () => {
  it('runs, waits for an approval, and resumes from the shared store', async () => {
    const store = await createPostgresTaskStore(await freshDatabase());
    onTestFinished(() => store.close());
    const h = await createHarness({ config: { irreversible: { paths: ['release/**'] } } });
    const spec = task2({
      mode: 'single',
      tests: null,
      playbook: {
        coding: [
          [
            { call: 'write_file', args: { path: 'release/notes.md', content: 'v1\n', createParents: true } },
            { submit: { version: 'change.v1', summary: 'notes', files: [], commit: null } },
          ],
        ],
      },
    });
    const first = await runTask({ loaded: h.loaded, store, env: process.env, task: spec });
    expect(first.run.status).toBe('waiting');
    const [approval] = await store.listApprovals({ status: 'pending' });
    expect(approval?.tool).toBe('write_file');
    expect(
      (
        await store.decideApproval(approval!.id, {
          approve: true,
          by: 'alice',
          reason: null,
          now: new Date(),
        })
      ).ok,
    ).toBe(true);
    const resumed = await resumeTask({
      loaded: h.loaded,
      store,
      env: process.env,
      taskId: first.run.id,
      reason: 'approved',
    });
    expect([resumed.run.status, resumed.run.steps]).toEqual(['succeeded', 2]);
    expect(readFileSync(path.join(h.repo.dir, 'release', 'notes.md'), 'utf8')).toBe('v1\n');
    expect((await store.listModelCalls(first.run.id)).map((c) => c.step)).toEqual([1, 2]);
    expect(await store.verifyEvents()).toMatchObject({ ok: true });
  });
});

describe.skipIf(databaseUrl === undefined)('fencing on PostgreSQL', () => {
  it('a stale write racing a takeover waits on the ownership row and is refused, never written', async () => {
    const url = await freshDatabase();
    const store = await createPostgresTaskStore(url);
    onTestFinished(() => store.close());
    await store.createTask(task('t-1', '2026-11-30T00:00:00.000Z'));
    expect(await store.claimOwner('t-1', null, worker)).toEqual({ ok: true, epoch: 1 });
    const stale = store.writer('t-1', 1);
    const client = async () => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      onTestFinished(() => c.end());
      return c;
    };
    // A takeover caught mid-transaction: the ownership row is moved on, not yet committed.
    const takeover = await client();
    await takeover.query('BEGIN');
    await takeover.query('UPDATE task_control SET epoch = 2 WHERE task_id = $1', ['t-1']);
    const write = stale.appendEvent('step', { n: 1 }, second(1));
    // The write must not read the committed epoch 1 and go on: it waits for the takeover's lock.
    const observer = await client();
    const waiting = async () =>
      (
        await observer.query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
      ).rows[0].n as number;
    for (let polls = 0; (await waiting()) === 0; polls++) {
      if (polls === 500)
        throw new Error('the stale write never waited for the takeover: it was not fenced by a lock');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await takeover.query('COMMIT');
    expect(await write).toMatchObject({ ok: false, code: 'FENCED', epoch: 1, current: 2 });
    expect(await store.listEvents('t-1')).toEqual([]);
  });
});
