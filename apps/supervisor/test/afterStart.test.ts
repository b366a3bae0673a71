import { setTimeout as delay } from 'node:timers/promises';
import { tempDir } from '@keel/testing';
import { describe, expect, it, onTestFinished } from 'vitest';
import { writesAfterStart } from '../src/engine/afterStart.js';
import { createSqliteTaskStore } from '../src/store/sqliteTaskStore.js';
import type { TaskWriter } from '../src/store/taskStore.js';
import { ownerWriter } from './helpers.js';

const at = new Date('2026-12-07T12:00:00Z');

async function claimedTask() {
  const store = createSqliteTaskStore(await tempDir('keel-after-start-'));
  onTestFinished(() => store.close());
  await store.createTask({
    id: 't-1',
    type: 't',
    title: 't',
    mode: 'single',
    status: 'starting',
    createdAt: at.toISOString(),
    endedAt: null,
    configHash: 'x',
    spec: {},
    startingState: null,
    run: null,
  });
  return { store, writer: await ownerWriter(store, 't-1') };
}

/** The store's writer with its `appendEvent` replaced. */
const withAppendEvent = (writer: TaskWriter, appendEvent: TaskWriter['appendEvent']): TaskWriter =>
  new Proxy(writer, {
    get: (target, key) => {
      if (key === 'appendEvent') return appendEvent;
      const value: unknown = Reflect.get(target, key);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });

/** The writer with its first event write held back 50 ms, as a slow connection of a pool would. */
function firstEventSlow(writer: TaskWriter): TaskWriter {
  let first = true;
  return withAppendEvent(writer, async (...args) => {
    if (first) {
      first = false;
      await delay(50);
    }
    return writer.appendEvent(...args);
  });
}

describe("writes asked while the task's start is being recorded", () => {
  it('land after the start, in the order they were asked, even when one connection is slower', async () => {
    const { store, writer } = await claimedTask();
    let begin!: () => void;
    const started = new Promise<void>((resolve) => (begin = resolve));
    const queued = writesAfterStart(firstEventSlow(writer), started);
    const asked = ['agent_started', 'model_reply', 'tool_result'].map((type) =>
      queued.appendEvent(type, {}, at),
    );
    await delay(20);
    // Nothing landed before the start.
    expect(await store.listEvents('t-1')).toEqual([]);
    expect((await writer.appendEvent('task_started', {}, at)).ok).toBe(true);
    begin();
    expect((await Promise.all(asked)).map((r) => r.ok)).toEqual([true, true, true]);
    expect((await store.listEvents('t-1')).map((e) => e.type)).toEqual([
      'task_started',
      'agent_started',
      'model_reply',
      'tool_result',
    ]);
  });

  it('fail with the start when it failed: nothing of the run lands', async () => {
    const { store, writer } = await claimedTask();
    const failure = new Error('the starting state could not be read');
    const started = Promise.reject(failure);
    started.catch(() => undefined);
    const queued = writesAfterStart(writer, started);
    const first = queued.appendEvent('agent_started', {}, at);
    const second = queued.updateTask({ status: 'running' });
    await expect(first).rejects.toBe(failure);
    await expect(second).rejects.toBe(failure);
    expect(await store.listEvents('t-1')).toEqual([]);
    expect((await store.getTask('t-1'))?.status).toBe('starting');
    // The heartbeat is not queued behind them.
    expect((await queued.renewOwner(at)).ok).toBe(true);
  });

  it('go on after a write that failed (its caller saw it)', async () => {
    const { store, writer } = await claimedTask();
    const lost = new Error('connection lost');
    let calls = 0;
    const flaky = withAppendEvent(writer, (...args) =>
      calls++ === 0 ? Promise.reject(lost) : writer.appendEvent(...args),
    );
    const queued = writesAfterStart(flaky, Promise.resolve());
    const failed = queued.appendEvent('a', {}, at);
    const next = queued.appendEvent('b', {}, at);
    await expect(failed).rejects.toBe(lost);
    expect((await next).ok).toBe(true);
    expect((await store.listEvents('t-1')).map((e) => e.type)).toEqual(['b']);
  });
});
