import type { ScriptedReply } from '@keel/testing/chat-server';
import { describe, expect, it } from 'vitest';
import type { RetryPolicy } from '../src/engine/stages/modelCall.js';
import { emptyChange, runScripted } from './scripted.js';

const write: ScriptedReply = {
  toolCalls: [{ name: 'write_file', arguments: { path: 'a.txt', content: 'a\n' } }],
};
const submit: ScriptedReply = { toolCalls: [{ name: 'submit_change', arguments: emptyChange }] };

/** The backoff's jitter drawn at its middle, and every wait recorded instead of slept. */
function recordedRetry(waits: number[]): RetryPolicy {
  return {
    attempts: 4,
    baseMs: 100,
    maxMs: 1000,
    random: () => 0.5,
    sleep: async (ms) => {
      waits.push(ms);
    },
  };
}

describe('provider faults', () => {
  it('a 429 with Retry-After, a 503 and a connection reset are retried: each try recorded as the next attempt, the task finishes', async () => {
    const waits: number[] = [];
    const r = await runScripted({
      script: [
        { status: 429, headers: { 'retry-after': '2' } },
        { status: 503 },
        { reset: true },
        write,
        submit,
      ],
      retry: recordedRetry(waits),
    });
    expect(r.run.status).toBe('succeeded');
    // Retry-After honoured (2 s); then the backoff 100·2^(n-1) ms with equal jitter at its middle.
    expect(waits).toEqual([2000, 150, 300]);
    expect(r.modelCalls.map((c) => [c.step, c.attempt, c.error === null])).toEqual([
      [1, 1, false],
      [1, 2, false],
      [1, 3, false],
      [1, 4, true],
      [2, 1, true],
    ]);
    expect(r.server.requests.length).toBe(5);
    expect(r.run.steps).toBe(2);
    expect(r.exists('a.txt')).toBe(true);
  });

  it('a fault that outlasts the tries ends the task in error after the last one, each try recorded', async () => {
    const waits: number[] = [];
    const r = await runScripted({
      script: [{ status: 500 }, { status: 502 }, { status: 503 }, { status: 500 }, submit],
      retry: recordedRetry(waits),
    });
    expect(r.run.status).toBe('error');
    expect(r.run.outcome.message).toMatch(
      /^model call failed \(openai-compatible:test-model\) \(after 4 tries\): openai-compatible answered HTTP 500/,
    );
    expect(waits).toEqual([75, 150, 300]);
    expect(r.modelCalls.map((c) => [c.step, c.attempt, c.error === null])).toEqual([
      [1, 1, false],
      [1, 2, false],
      [1, 3, false],
      [1, 4, false],
    ]);
  });

  it('a 400 is not retried: the task ends at once', async () => {
    const waits: number[] = [];
    const r = await runScripted({ script: [{ status: 400 }, submit], retry: recordedRetry(waits) });
    expect(r.run.status).toBe('error');
    expect(waits).toEqual([]);
    expect(r.modelCalls.map((c) => [c.step, c.attempt])).toEqual([[1, 1]]);
  });
});
