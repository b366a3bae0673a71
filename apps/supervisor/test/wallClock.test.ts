import type { ChatScript } from '@keel/testing/chat-server';
import { describe, expect, it } from 'vitest';
import { keel } from './processes.js';
import { escalatedWorld, submitEmptyChange as submit } from './scripted.js';

/** Its first answer takes 3 s — past a 1 s wall clock — and writes a.txt; then it hands in. */
const slowFirst: ChatScript = (call) => {
  const turn = (call.body.messages as Array<{ role: string }>).filter((m) => m.role === 'assistant').length;
  return turn === 0
    ? { delayMs: 3000, toolCalls: [{ name: 'write_file', arguments: { path: 'a.txt', content: 'a\n' } }] }
    : submit;
};

describe('escalateLimits: [wall_clock]', () => {
  it('the wall clock escalates instead of cutting the call off; continued with it raised, the task goes on from where it stands', async () => {
    const { h, server, run, escalation } = await escalatedWorld(
      slowFirst,
      { escalateLimits: ['wall_clock'] },
      { wallClockMs: 1000 },
    );
    expect([run.status, run.outcome.limit]).toEqual(['escalated', 'wall_clock']);
    expect([escalation.kind, escalation.status, escalation.tool]).toEqual([
      'escalation',
      'pending',
      'escalation:wall_clock',
    ]);
    // The slow call was answered, not cut off, and recorded.
    expect(server.requests.map((r) => r.outcome)).toEqual(['answered']);
    expect((await h.store.listModelCalls(run.id)).map((c) => [c.step, c.error])).toEqual([[1, null]]);

    const continued = await keel(
      ['continue', escalation.id, '--raise', 'wallClockMs=600000', '--as', 'tester', '--quiet'],
      h.dir,
    );
    expect(continued.stderr).toBe('');
    expect(continued.code).toBe(0);
    expect((await h.store.getTask(run.id))?.status).toBe('succeeded');
    // No second escalation: the raise held from the resumed run's first step.
    expect((await h.store.listApprovals({ taskId: run.id })).map((a) => a.id)).toEqual([escalation.id]);
    expect(server.requests.length).toBe(2);
  });
});
