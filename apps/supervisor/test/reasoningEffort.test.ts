import type { ScriptedReply } from '@keel/testing/chat-server';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.js';
import { KeelError } from '@keel/kit/core';
import { createAnthropicModel } from '../src/models/anthropic.js';
import { emptyChange, runScripted, serve } from './scripted.js';

const agents = (coding: Record<string, unknown>) => ({
  agents: {
    planning: { model: 'gpt', tools: {} },
    coding: { model: 'gpt', tools: {}, ...coding },
    review: { model: 'gpt', tools: {} },
  },
});

/** Reads README.md thinking first, then hands in an empty change thinking again. */
const thinkingScript: ScriptedReply[] = [
  {
    reasoning: 'The README will say what to change.',
    toolCalls: [{ name: 'read_file', arguments: { path: 'README.md' } }],
  },
  { reasoning: 'Nothing to change.', toolCalls: [{ name: 'submit_change', arguments: emptyChange }] },
];

describe('reasoning effort per agent', () => {
  it('Anthropic: thinks within the reserved max_tokens and sends its signed thinking back with the tool-use turn', async () => {
    const r = await runScripted({
      provider: 'anthropic',
      script: thinkingScript,
      config: agents({ maxTokens: 8192, reasoningEffort: 'medium' }),
    });
    expect(r.run.status).toBe('succeeded');
    expect(r.server.requests.map((q) => [q.response?.status, q.body.max_tokens, q.body.thinking])).toEqual([
      [200, 8192, { type: 'enabled', budget_tokens: 4096 }],
      [200, 8192, { type: 'enabled', budget_tokens: 4096 }],
    ]);
    // What went out as max_tokens is what the engine reserved: thinking is output, priced as output.
    expect(
      r.modelCalls.map((c) => [
        c.reservedOutputTokens,
        (c.request as { reasoningEffort: string }).reasoningEffort,
      ]),
    ).toEqual([
      [8192, 'medium'],
      [8192, 'medium'],
    ]);
    const turn = r.server.requests[1]!.body.messages[1];
    expect(turn).toEqual({
      role: 'assistant',
      content: [
        {
          type: 'thinking',
          thinking: 'The README will say what to change.',
          signature: 'scripted-signature-0',
        },
        { type: 'tool_use', id: 'toolu_0_0', name: 'read_file', input: { path: 'README.md' } },
      ],
    });
    // The record keeps the reasoning with the reply, so a resume or a replay sends it back alike.
    expect((r.modelCalls[0]!.reply as { reasoning: unknown }).reasoning).toEqual([
      { text: 'The README will say what to change.', signature: 'scripted-signature-0' },
    ]);
  });

  it('Anthropic refuses the same turn without its thinking (what dropping it would cost)', async () => {
    const r = await runScripted({
      provider: 'anthropic',
      script: thinkingScript,
      config: agents({ maxTokens: 8192, reasoningEffort: 'medium' }),
    });
    const { startScriptedChatServer } = await import('@keel/testing/chat-server');
    const server = await startScriptedChatServer({ script: [{ text: 'unused' }] });
    try {
      const sent = r.server.requests[1]!.body;
      const [user, assistant, ...rest] = sent.messages;
      const stripped = {
        ...sent,
        messages: [
          user,
          { ...assistant, content: assistant.content.filter((b: { type: string }) => b.type !== 'thinking') },
          ...rest,
        ],
      };
      const response = await fetch(`${server.url}/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(stripped),
      });
      expect([
        response.status,
        ((await response.json()) as { error: { message: string } }).error.message,
      ]).toEqual([
        400,
        'messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`. When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks).',
      ]);
    } finally {
      await server.close();
    }
  });

  it('Anthropic: a max_tokens the budget stage lowered keeps 1024 for the answer, and below 2048 the call goes without thinking', async () => {
    const server = await serve([{ text: 'a' }, { text: 'b' }, { text: 'c' }]);
    const model = createAnthropicModel({ baseURL: server.url, model: 'claude-x' });
    const ask = (maxTokens: number) =>
      model.generate(
        {
          messages: [{ role: 'user', content: 'hi' }],
          tools: [],
          maxTokens,
          reasoningEffort: 'high',
          signal: new AbortController().signal,
        },
        { taskId: 't', agent: 'coding', step: 1, invocation: 1 },
      );
    await ask(20_000);
    await ask(3000);
    await ask(2047);
    expect(server.requests.map((q) => [q.response?.status, q.body.max_tokens, q.body.thinking])).toEqual([
      [200, 20_000, { type: 'enabled', budget_tokens: 16384 }],
      [200, 3000, { type: 'enabled', budget_tokens: 1976 }],
      [200, 2047, undefined],
    ]);
  });

  it('OpenAI-compatible: sends reasoning_effort; unsigned reasoning_content is not sent back', async () => {
    const r = await runScripted({
      script: thinkingScript,
      config: agents({ reasoningEffort: 'high' }),
    });
    expect(r.run.status).toBe('succeeded');
    expect(r.server.requests.map((q) => [q.body.reasoning_effort, q.body.max_tokens])).toEqual([
      ['high', 4096],
      ['high', 4096],
    ]);
    const first = r.server.requests[0]!.response!.body as {
      choices: Array<{ message: Record<string, unknown> }>;
    };
    expect(first.choices[0]!.message['reasoning_content']).toBe('The README will say what to change.');
    expect(r.server.requests[1]!.body.messages[2]).toEqual({
      role: 'assistant',
      content: null,
      tool_calls: [
        {
          id: 'call_0_0',
          type: 'function',
          function: { name: 'read_file', arguments: JSON.stringify({ path: 'README.md' }) },
        },
      ],
    });
  });

  it('without reasoningEffort nothing new goes out', async () => {
    const r = await runScripted({ provider: 'anthropic', script: thinkingScript, config: agents({}) });
    expect(r.server.requests.map((q) => ['thinking' in q.body, q.body.max_tokens])).toEqual([
      [false, 4096],
      [false, 4096],
    ]);
  });

  it('the config refuses an unknown effort, and an Anthropic agent whose maxTokens leaves no room to think', () => {
    const config = (coding: Record<string, unknown>) => ({
      version: 1,
      workspace: '.',
      servers: {},
      models: { claude: { provider: 'anthropic', model: 'claude-x' } },
      prices: { 'claude-x': { inputPerMTok: 3, outputPerMTok: 15 } },
      agents: {
        planning: { model: 'claude', tools: {} },
        coding: { model: 'claude', tools: {}, ...coding },
        review: { model: 'claude', tools: {} },
      },
    });
    const issues = (coding: Record<string, unknown>) => {
      try {
        parseConfig(config(coding), 'keel.config.yaml');
        return [];
      } catch (error) {
        return ((error as KeelError).details as { issues: string[] }).issues;
      }
    };
    expect(issues({ reasoningEffort: 'max' })).toEqual([
      'agents.coding.reasoningEffort: Invalid option: expected one of "low"|"medium"|"high"',
    ]);
    expect(issues({ reasoningEffort: 'high' })).toEqual([
      "agents.coding.maxTokens: 4096 leaves no room for reasoningEffort 'high' (Anthropic thinks within max_tokens: 16384 for thinking + 1024 for the answer); set maxTokens to at least 17408, or a lower effort",
    ]);
    expect(issues({ reasoningEffort: 'high', maxTokens: 17408 })).toEqual([]);
    expect(issues({ reasoningEffort: 'low' })).toEqual([]);
  });
});
