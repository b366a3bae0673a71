import { startScriptedChatServer } from '@keel/testing/chat-server';
import { describe, expect, it, onTestFinished } from 'vitest';
import { defaultLimits } from '../src/config/schema.js';
import { Budget, costOf } from '../src/limits/budget.js';
import { createAnthropicModel } from '../src/models/anthropic.js';
import type { ModelRequest } from '../src/models/model.js';
import { createOpenAICompatibleModel } from '../src/models/openaiCompatible.js';

const context = { taskId: 't-1', agent: 'coding', step: 1, invocation: 1 };
/** A request whose prefix (about 2,500 tokens) is worth caching, then one turn that differs. */
const request = (turn: string): ModelRequest => ({
  messages: [
    { role: 'system', content: `You are terse. ${'Keep to the task. '.repeat(550)}` },
    { role: 'user', content: turn },
  ],
  tools: [],
  maxTokens: 256,
  signal: new AbortController().signal,
});

async function cachingServer() {
  const server = await startScriptedChatServer({ script: () => ({ text: 'ok' }), promptCache: true });
  onTestFinished(() => server.close());
  return server;
}

describe('prompt caching', () => {
  it('OpenAI-compatible: cached_tokens is read back as the cached part of the input; prompt_cache_key goes out when configured', async () => {
    const server = await cachingServer();
    const model = createOpenAICompatibleModel({
      baseURL: server.url,
      model: 'gpt-test',
      promptCacheKey: true,
    });
    const first = await model.generate(request('first'), context);
    const second = await model.generate(request('second'), context);
    expect(first.usage).toEqual({ inputTokens: first.usage.inputTokens, outputTokens: 1 });
    const reported = (
      server.requests[1]!.response!.body as { usage: { prompt_tokens_details: { cached_tokens: number } } }
    ).usage.prompt_tokens_details.cached_tokens;
    expect(reported).toBeGreaterThan(1024);
    expect(second.usage).toEqual({
      inputTokens: second.usage.inputTokens,
      outputTokens: 1,
      cachedInputTokens: reported,
    });
    expect(server.requests.map((r) => r.body.prompt_cache_key)).toEqual([
      'keel/t-1/coding',
      'keel/t-1/coding',
    ]);
    // Without the option nothing new goes out: servers that refuse unknown fields keep working.
    const plain = createOpenAICompatibleModel({ baseURL: server.url, model: 'gpt-test' });
    await plain.generate(request('third'), context);
    expect('prompt_cache_key' in server.requests[2]!.body).toBe(false);
  });

  it('Anthropic: cache_read_input_tokens is read back; the total counts it', async () => {
    const server = await cachingServer();
    const model = createAnthropicModel({ baseURL: server.url, model: 'claude-test', apiKey: 'k' });
    await model.generate(request('first'), context);
    const second = await model.generate(request('second'), context);
    const usage = (
      server.requests[1]!.response!.body as {
        usage: { input_tokens: number; cache_read_input_tokens: number };
      }
    ).usage;
    expect(usage.cache_read_input_tokens).toBeGreaterThan(1024);
    expect(second.usage).toEqual({
      inputTokens: usage.input_tokens + usage.cache_read_input_tokens,
      outputTokens: 1,
      cachedInputTokens: usage.cache_read_input_tokens,
    });
  });
});

describe('cached-token pricing', () => {
  const price = { inputPerMTok: 3, outputPerMTok: 15, cachedInputPerMTok: 0.3, cacheWritePerMTok: 6 };

  it('settles each part of the input at its own rate', () => {
    // 1M input of which 600k read from the cache and 100k written to it, 10k output.
    expect(
      costOf(price, 1_000_000, 10_000, { cachedInputTokens: 600_000, cacheWriteTokens: 100_000 }),
    ).toBeCloseTo(0.3 * 3 + 0.6 * 0.3 + 0.1 * 6 + 0.01 * 15, 10);
    // A price without cache rates charges cached input as input.
    expect(costOf({ inputPerMTok: 3, outputPerMTok: 15 }, 1_000_000, 0, { cachedInputTokens: 600_000 })).toBe(
      3,
    );
  });

  it('reserves input at the higher of the input and cache-write rates, so caching cannot cross the money limit', () => {
    const budget = new Budget({ ...defaultLimits, costUsd: 1 }, { now: () => 0 });
    const reserved = budget.reserveModelCall(100_000, 1000, price);
    // 100k input at $6 (the write rate), 1000 output at $15.
    expect(reserved).toEqual({
      ok: true,
      reservation: { inputTokens: 100_000, maxTokens: 1000, costUsd: 0.615 },
    });
    if (!reserved.ok) return;
    budget.settleModelCall(
      reserved.reservation,
      { inputTokens: 100_000, outputTokens: 1000, cachedInputTokens: 90_000 },
      price,
    );
    // Settled from the reported split: 10k uncached at $3, 90k cached at $0.30, 1000 output.
    expect(budget.used.costUsd).toBeCloseTo(0.03 + 0.027 + 0.015, 10);
    // Cached tokens count toward the token limit like any input token.
    expect(budget.tokens).toBe(101_000);
  });
});
