import type { ScriptedChatCall, ScriptedReply } from '@keel/testing/chat-server';
import { describe, expect, it } from 'vitest';
import { emptyChange, runScripted } from '../scripted.js';
import type { AttackMeta } from './world.js';

export const attacks: AttackMeta[] = [
  {
    id: 'usage-omitted',
    issue: 19,
    item: 7,
    onMain: 'failed',
    attack:
      'an OpenAI-compatible server (as local ones do) answers without usage; each reply counted as 0 tokens, so a task with a 100k-token limit sent 80 requests (~300k tokens by the server’s own count) and only the step limit stopped it',
    guarantee:
      'a reply without usage is settled at its reservation (or a byte estimate): the token limit stops the task before the provider’s count crosses it',
    benign: 'the same task against a provider that reports usage runs to its end, counted as reported',
  },
  {
    id: 'usage-negative',
    issue: 19,
    item: 7,
    onMain: 'failed',
    attack: 'a provider reports negative token counts; they were subtracted from what the task had used',
    guarantee: 'a negative or non-numeric count is treated as missing: counted at the bound',
    benign: 'the same task against a provider that reports usage runs to its end, counted as reported',
  },
];

const tokenLimit = 100_000;

/** A coder that writes one small file per reply, `writes` times, then hands in its change. */
const writer =
  (writes: number, usage: ScriptedReply['usage']) =>
  (call: ScriptedChatCall): ScriptedReply =>
    call.index < writes
      ? {
          toolCalls: [
            {
              name: 'write_file',
              arguments: { path: `n${call.index}.txt`, content: `note ${call.index}\n` },
            },
          ],
          ...(usage === undefined ? {} : { usage }),
        }
      : {
          toolCalls: [{ name: 'submit_change', arguments: emptyChange }],
          ...(usage === undefined ? {} : { usage }),
        };

const run = (writes: number, usage: ScriptedReply['usage']) =>
  runScripted({
    script: writer(writes, usage),
    config: {
      agents: {
        planning: { model: 'gpt', tools: {} },
        coding: { model: 'gpt', tools: { filesystem: ['write_file'] }, maxTokens: 1000 },
        review: { model: 'gpt', tools: {} },
      },
    },
    taskFile: { limits: { tokens: tokenLimit, steps: 80, toolCalls: 200 } },
  });

/** What the provider itself would bill for the requests it was sent: a quarter of each body's bytes, and each reply's. */
const providerCount = (requests: Array<{ body: unknown }>) =>
  requests.reduce((sum, q) => sum + Math.ceil(Buffer.byteLength(JSON.stringify(q.body)) / 4) + 20, 0);

describe('budgets that cannot undercount (issue 19, item 7)', () => {
  it.each([
    ['omits usage', null],
    ['reports negative usage', { inputTokens: -5_000, outputTokens: -1 }],
  ] as const)('attack: a provider that %s is stopped by the token limit', async (_name, usage) => {
    // More writes than the step limit allows: only a limit can end it.
    const r = await run(100, usage);
    expect(r.run.status).toBe('limit');
    expect(r.run.outcome).toEqual({
      limit: 'tokens',
      message: expect.stringMatching(
        /^token limit: \d+ input \(bound\) \+ 256 output would cross what is left \(\d+ of 100000\)$/,
      ),
    });
    // Every reply was settled at its reservation, and the provider's own count stayed under the limit.
    expect(
      r.modelCalls.every(
        (c) => c.inputTokens === c.reservedInputTokens && c.outputTokens === c.reservedOutputTokens,
      ),
    ).toBe(true);
    const counted = r.modelCalls.reduce((sum, c) => sum + c.inputTokens + c.outputTokens, 0);
    expect(r.run.tokens.input + r.run.tokens.output).toBe(counted);
    expect(counted).toBeLessThanOrEqual(tokenLimit);
    expect(providerCount(r.server.requests)).toBeLessThanOrEqual(tokenLimit);
    expect(r.events.filter((e) => e.type === 'usage_missing').length).toBe(r.modelCalls.length);
    expect(r.server.requests.length).toBe(r.modelCalls.length);
  });

  it('benign twin: a provider that reports usage is counted as reported and the task runs to its end', async () => {
    const r = await run(30, { inputTokens: 50, outputTokens: 20 });
    expect(r.run.status).toBe('succeeded');
    expect(r.server.requests.length).toBe(31);
    expect(r.run.tokens).toEqual({ input: 31 * 50, output: 31 * 20 });
    expect(r.events.filter((e) => e.type === 'usage_missing')).toEqual([]);
  });
});
