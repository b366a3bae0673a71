import { expect } from 'vitest';
import type { RecordedChatRequest, ScriptedReply } from '@keel/testing/chat-server';
import { createProject, type Move } from './world.js';

export const tokenLimit = 100_000;

/** A coder that writes one small file per reply, `writes` times, then hands in its change; every reply reports `usage`. */
export async function writerRun(writes: number, usage: ScriptedReply['usage']) {
  const p = await createProject();
  const agent = { model: 'gpt', tools: { filesystem: ['write_file'] }, maxTokens: 1000 };
  await p.configure({ agents: { planning: agent, coding: agent, review: agent } });
  const moves: Move[] = Array.from({ length: writes }, (_, i) => ({
    name: 'write_file',
    arguments: { path: `n${i}.txt`, content: `note ${i}\n` },
  }));
  const run = await p.run(moves, { usage, limits: { tokens: tokenLimit, steps: 80, toolCalls: 200 } });
  return { p, run };
}

/** What the provider itself would bill for the requests it was sent: a quarter of each body's bytes, and each reply's. */
const providerCount = (requests: readonly RecordedChatRequest[]) =>
  requests.reduce((sum, q) => sum + Math.ceil(Buffer.byteLength(JSON.stringify(q.body)) / 4) + 20, 0);

/** A provider that misreports usage is stopped by the token limit, every reply settled at its reservation. */
export async function expectStoppedByTokens(usage: ScriptedReply['usage']): Promise<void> {
  // More writes than the step limit allows: only a limit can end it.
  const { p, run } = await writerRun(100, usage);
  expect(run.status).toBe('limit');
  expect(run.outcome).toEqual({
    limit: 'tokens',
    message: expect.stringMatching(
      /^token limit: \d+ input \(bound\) \+ 256 output would cross what is left \(\d+ of 100000\)$/,
    ),
  });
  // Every reply was settled at its reservation, and the provider's own count stayed under the limit.
  expect(
    run.modelCalls.every(
      (c) => c.inputTokens === c.reservedInputTokens && c.outputTokens === c.reservedOutputTokens,
    ),
  ).toBe(true);
  const counted = run.modelCalls.reduce((sum, c) => sum + c.inputTokens + c.outputTokens, 0);
  expect(run.tokens.input + run.tokens.output).toBe(counted);
  expect(counted).toBeLessThanOrEqual(tokenLimit);
  expect(providerCount(p.requests)).toBeLessThanOrEqual(tokenLimit);
  expect(run.events.filter((e) => e.type === 'usage_missing').length).toBe(run.modelCalls.length);
  expect(p.requests.length).toBe(run.modelCalls.length);
}

/** The benign twin of both: a provider that reports usage is counted as reported and the task runs to its end. */
export async function countedAsReported(): Promise<void> {
  const { p, run } = await writerRun(30, { inputTokens: 50, outputTokens: 20 });
  expect(run.status).toBe('succeeded');
  expect(p.requests.length).toBe(31);
  expect(run.tokens).toEqual({ input: 31 * 50, output: 31 * 20 });
  expect(run.events.filter((e) => e.type === 'usage_missing')).toEqual([]);
}
