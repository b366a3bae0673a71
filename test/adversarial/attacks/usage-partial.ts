import { expect } from 'vitest';
import { defineAttack } from '../src/attack.js';
import { countedAsReported, writerRun } from '../src/budgets.js';

export default defineAttack({
  id: 'usage-partial',
  item: '19.7',
  onMain: 'guard',
  title:
    'a provider reports only half of `usage`: `completion_tokens: 1` without `prompt_tokens` (the big half), or `prompt_tokens` without `completion_tokens`; a missing half counted as 0 would let the task run on under its token limit',
  proves:
    'each missing half is counted at its bound and the reported half as reported: with the input missing, the token limit stops the task as with usage omitted',
  async attack() {
    // Only the output reported: every input counted at its bound, so the token limit stops the task.
    const outputOnly = await writerRun(100, { inputTokens: null, outputTokens: 1 });
    expect([outputOnly.run.status, outputOnly.run.outcome.limit]).toEqual(['limit', 'tokens']);
    expect(
      outputOnly.run.modelCalls.every((c) => c.inputTokens === c.reservedInputTokens && c.outputTokens === 1),
    ).toBe(true);
    expect(outputOnly.run.modelCalls.length).toBeLessThan(80);
    const missing = (run: typeof outputOnly.run) =>
      run.events
        .filter((e) => e.type === 'usage_missing')
        .map((e) => (e.data as { missing: string[] }).missing);
    expect(missing(outputOnly.run)).toEqual(outputOnly.run.modelCalls.map(() => ['input']));
    // Only the input reported: every output counted at its bound.
    const inputOnly = await writerRun(3, { inputTokens: 50, outputTokens: null });
    expect(inputOnly.run.status).toBe('succeeded');
    expect(inputOnly.run.modelCalls.map((c) => [c.inputTokens, c.outputTokens])).toEqual(
      inputOnly.run.modelCalls.map((c) => [50, c.reservedOutputTokens]),
    );
    expect(inputOnly.run.tokens).toEqual({
      input: 4 * 50,
      output: inputOnly.run.modelCalls.reduce((sum, c) => sum + c.reservedOutputTokens, 0),
    });
    expect(missing(inputOnly.run)).toEqual([['output'], ['output'], ['output'], ['output']]);
  },
  twin: {
    title: 'the same task against a provider that reports both halves runs to its end, counted as reported',
    run: countedAsReported,
  },
});
