import { hostname } from 'node:os';
import { tempDir } from '@keel/testing';
import { describe, expect, it, onTestFinished } from 'vitest';
import { killTask } from '../src/control/kill.js';
import { processStartTime } from '../src/control/processes.js';
import { createSqliteTaskStore } from '../src/store/sqliteTaskStore.js';

const clock = { now: () => Date.parse('2026-12-06T12:00:00Z') };

describe('keel kill on a system without /proc', () => {
  it('records the kill (the owner is fenced) but neither signals, forces nor marks the task killed while its process may run it', async () => {
    const store = createSqliteTaskStore(await tempDir('keel-noproc-'));
    onTestFinished(() => store.close());
    await store.createTask({
      id: 't-1',
      type: 't',
      title: 't',
      mode: 'single',
      status: 'running',
      createdAt: new Date(clock.now()).toISOString(),
      endedAt: null,
      configHash: 'x',
      spec: {},
      startingState: null,
      run: null,
    });
    // This test process owns the task, as a `keel run` on this machine would.
    const owner = {
      pid: process.pid,
      startTime: processStartTime(process.pid)!,
      host: hostname(),
      serverPids: [],
    };
    const claim = await store.claimOwner('t-1', null, owner);
    expect(claim.ok).toBe(true);
    const result = await killTask(store, 't-1', 'ops', { clock, ackMs: 50, procRoot: '/nonexistent' });
    expect({ ...result, ms: 0 }).toEqual({ taskId: 't-1', result: 'requested', pid: process.pid, ms: 0 });
    expect((await store.getTask('t-1'))?.status).toBe('running');
    const ownership = await store.getOwnership('t-1');
    expect([ownership.killRequested, ownership.owner?.pid]).toEqual([true, process.pid]);
    // The owner's writes are refused from the request on: it stops at its next call.
    const writer = store.writer('t-1', claim.ok ? claim.epoch : -1);
    expect((await writer.appendEvent('late', {}, new Date(clock.now()))).ok).toBe(false);
  });
});
