import { describe, expect, it } from 'vitest';
import { Budget } from '../src/limits/budget.js';
import { countUsage } from '../src/limits/usage.js';
import { defaultLimits } from '../src/config/schema.js';

const reservation = { inputTokens: 4_000, maxTokens: 1_000, costUsd: 0 };
const reply = { text: 'done', toolCalls: [{ id: 'c1', name: 'write_file', arguments: { path: 'a.txt' } }] };
const replyBytes = Buffer.byteLength(JSON.stringify(reply));

describe('counting usage: nothing unknown counts as zero', () => {
  it('counts what the provider reported, and a part it left out at its bound', () => {
    expect(countUsage({ inputTokens: 1_200, outputTokens: 40 }, reservation, 'reservation', reply)).toEqual({
      inputTokens: 1_200,
      outputTokens: 40,
      missing: [],
    });
    expect(
      countUsage({ inputTokens: undefined, outputTokens: undefined }, reservation, 'reservation', reply),
    ).toEqual({ inputTokens: 4_000, outputTokens: 1_000, missing: ['input', 'output'] });
    // Partial usage: the part reported counts as reported, the other at the bound.
    expect(
      countUsage({ inputTokens: 1_200, outputTokens: undefined }, reservation, 'reservation', reply),
    ).toEqual({
      inputTokens: 1_200,
      outputTokens: 1_000,
      missing: ['output'],
    });
  });

  it('treats a negative, infinite or non-numeric count as missing', () => {
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY, '12' as unknown as number])
      expect(countUsage({ inputTokens: bad, outputTokens: 3 }, reservation, 'reservation', reply)).toEqual({
        inputTokens: 4_000,
        outputTokens: 3,
        missing: ['input'],
      });
  });

  it('estimates at half the bytes when the model is configured so, never above the reservation', () => {
    expect(
      countUsage({ inputTokens: undefined, outputTokens: undefined }, reservation, 'estimate', reply),
    ).toEqual({
      inputTokens: 2_000,
      outputTokens: Math.ceil(replyBytes / 2),
      missing: ['input', 'output'],
    });
    const long = { text: 'x'.repeat(10_000), toolCalls: [] };
    expect(
      countUsage({ inputTokens: 7, outputTokens: undefined }, reservation, 'estimate', long).outputTokens,
    ).toBe(1_000);
  });

  it('a reply settled at its reservation leaves the budget where the reservation put it', () => {
    const budget = new Budget({ ...defaultLimits, tokens: 10_000 }, { now: () => 0 });
    const reserved = budget.reserveModelCall(4_000, 1_000, undefined);
    expect(reserved.ok).toBe(true);
    if (!reserved.ok) return;
    expect(budget.used).toMatchObject({ inputTokens: 4_000, outputTokens: 1_000 });
    const counted = countUsage(
      { inputTokens: undefined, outputTokens: undefined },
      reserved.reservation,
      'reservation',
      reply,
    );
    expect(budget.settleModelCall(reserved.reservation, counted, undefined)).toEqual({});
    expect(budget.used).toMatchObject({ steps: 1, inputTokens: 4_000, outputTokens: 1_000 });
    // What is left cannot fit another call of the same size: the limit holds.
    const next = budget.reserveModelCall(4_000, 1_000, undefined);
    expect(next.ok).toBe(true);
    expect(budget.reserveModelCall(4_000, 1_000, undefined)).toEqual({
      ok: false,
      limit: 'tokens',
      message: 'token limit: 4000 input (bound) + 256 output would cross what is left (0 of 10000)',
    });
  });
});
