import { readFileSync } from 'node:fs';
import path from 'node:path';
import { sha256Hex } from '@keel/kit';
import type { ScriptedReply } from '@keel/testing/chat-server';
import { describe, expect, it } from 'vitest';
import { builtinPrompt } from '../src/agents/roles.js';
import type { ModelMessage, ModelToolDefinition } from '../src/models/model.js';
import { asOpenAiMessages, callList, quoted, runScripted, submitEmptyChange } from './scripted.js';

const reply = (name: string, args: unknown, inputTokens: number, outputTokens: number): ScriptedReply => ({
  toolCalls: [{ name, arguments: args }],
  usage: { inputTokens, outputTokens },
});

const change = {
  version: 'change.v1',
  summary: 'README says more',
  files: [{ path: 'README.md', status: 'modified', linesAdded: 1, linesRemoved: 0 }],
  commit: null,
};

const script = [
  reply('write_file', { path: 'README.md', content: '# ws\nmore\n' }, 1200, 30),
  reply('git_commit', { message: 'Say more in the README', all: true }, 1300, 20),
  reply('submit_change', change, 1400, 40),
];

const handoff =
  'Task (test): a test task\n\ndo the thing\n\nMake the change, commit it, then call submit_change.';

interface RecordedRequest {
  messages: ModelMessage[];
  tools: ModelToolDefinition[];
  maxTokens: number;
}

describe('the record of each model call', () => {
  it('holds exactly what the provider was sent and what it answered', async () => {
    const r = await runScripted({
      script,
      config: { prices: { 'test-model': { inputPerMTok: 2, outputPerMTok: 10 } } },
    });
    expect(r.run.status).toBe('succeeded');
    expect(r.server.requests.length).toBe(3);
    expect(r.modelCalls.length).toBe(3);
    for (const [i, call] of r.modelCalls.entries()) {
      const sent = r.server.requests[i]!;
      const request = call.request as RecordedRequest;
      expect(call.raw).toEqual(sent.response!.body);
      expect(asOpenAiMessages(request.messages)).toEqual(sent.body.messages);
      expect(
        request.tools.map((t) => ({
          type: 'function',
          function: { name: t.name, description: t.description, parameters: t.inputSchema },
        })),
      ).toEqual(sent.body.tools);
      expect([request.maxTokens, call.reservedOutputTokens, sent.body.max_tokens]).toEqual([
        4096, 4096, 4096,
      ]);
      expect([call.provider, call.requestedModel, call.responseModel, sent.body.model]).toEqual([
        'openai-compatible',
        'test-model',
        'test-model',
        'test-model',
      ]);
      expect(call.systemSha256).toBe(sha256Hex(sent.body.messages[0].content));
      const usage = script[i]!.usage!;
      expect([call.inputTokens, call.outputTokens]).toEqual([usage.inputTokens, usage.outputTokens]);
      expect(call.costUsd).toBe((usage.inputTokens * 2 + usage.outputTokens * 10) / 1e6);
      expect(call.reply).toEqual({
        text: '',
        toolCalls: [
          {
            id: `call_${i}_0`,
            name: script[i]!.toolCalls![0]!.name,
            arguments: script[i]!.toolCalls![0]!.arguments,
          },
        ],
        usage,
        finishReason: 'tool_calls',
      });
      expect([call.step, call.agent, call.error]).toEqual([i + 1, 'coding', null]);
    }
    // The conversation itself: the system prompt, the hand-off, then each call and its quoted result.
    const [write, commit] = r.toolCalls;
    expect(callList(r.toolCalls)).toEqual(['filesystem.write_file:ok', 'git.git_commit:ok']);
    const results = r.toolCalls.map((c) => (c.result as { text: string }).text);
    expect(r.server.requests[2]!.body.messages).toEqual([
      { role: 'system', content: builtinPrompt('single') },
      { role: 'user', content: handoff },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          {
            id: 'call_0_0',
            type: 'function',
            function: { name: 'write_file', arguments: JSON.stringify(write!.arguments) },
          },
        ],
      },
      { role: 'tool', tool_call_id: 'call_0_0', content: quoted('write_file', 'ok', results[0]!) },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          {
            id: 'call_1_0',
            type: 'function',
            function: { name: 'git_commit', arguments: JSON.stringify(commit!.arguments) },
          },
        ],
      },
      { role: 'tool', tool_call_id: 'call_1_0', content: quoted('git_commit', 'ok', results[1]!) },
    ]);
    // Usage and cost as reported, summed.
    expect(r.run.tokens).toEqual({ input: 3900, output: 90 });
    expect(r.run.costUsd).toBe(r.modelCalls.reduce((sum, c) => sum + c.costUsd, 0));
    expect(await r.h.store.verifyEvents()).toEqual({ ok: true, events: r.events.length });
  });

  it('a git_commit made through the task carries the idempotency key of its recorded call', async () => {
    const r = await runScripted({ script });
    expect(r.run.status).toBe('succeeded');
    const commit = r.toolCalls.find((c) => c.tool === 'git_commit')!;
    const key = `keel-${sha256Hex(`${r.run.id}\n2\n0`).slice(0, 48)}`;
    expect([commit.step, commit.callIndex, commit.idempotencyKey]).toEqual([2, 0, key]);
    expect(await r.h.repo.git(['log', '-1', '--format=%B'])).toBe(
      `Say more in the README\n\nKeel-Idempotency-Key: ${key}\n\n`,
    );
    expect(await r.h.repo.git(['show', '--format=', '--name-only', 'HEAD'])).toBe('README.md\n');
    // Each call has its own key.
    const write = r.toolCalls.find((c) => c.tool === 'write_file')!;
    expect(write.idempotencyKey).toBe(`keel-${sha256Hex(`${r.run.id}\n1\n0`).slice(0, 48)}`);
  });
});

describe('the Anthropic adapter', () => {
  it('runs a task end to end against the messages protocol', async () => {
    const r = await runScripted({
      provider: 'anthropic',
      script: [
        reply('write_file', { path: 'a.txt', content: 'from claude\n' }, 900, 25),
        reply(
          'submit_change',
          { ...change, files: [{ path: 'a.txt', status: 'added', linesAdded: 1, linesRemoved: 0 }] },
          950,
          35,
        ),
      ],
    });
    expect(r.run.status).toBe('succeeded');
    expect(r.run.outcome).toEqual({ message: '1 coding round(s), no tests, no deploy' });
    expect(r.server.requests.map((q) => [q.protocol, q.path, q.body.model, q.body.max_tokens])).toEqual([
      ['anthropic', '/v1/messages', 'test-model', 4096],
      ['anthropic', '/v1/messages', 'test-model', 4096],
    ]);
    expect(readFileSync(path.join(r.h.repo.dir, 'a.txt'), 'utf8')).toBe('from claude\n');
    expect(callList(r.toolCalls)).toEqual(['filesystem.write_file:ok']);
    const second = r.server.requests[1]!.body;
    // Prompt caching: the system prompt and the last message are cache breakpoints.
    expect(second.system).toEqual([
      { type: 'text', text: builtinPrompt('single'), cache_control: { type: 'ephemeral' } },
    ]);
    expect(second.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: handoff }] },
      {
        role: 'assistant',
        content: [
          {
            type: 'tool_use',
            id: 'toolu_0_0',
            name: 'write_file',
            input: { path: 'a.txt', content: 'from claude\n' },
          },
        ],
      },
      {
        role: 'user',
        content: [
          {
            type: 'tool_result',
            tool_use_id: 'toolu_0_0',
            content: quoted('write_file', 'ok', (r.toolCalls[0]!.result as { text: string }).text),
            cache_control: { type: 'ephemeral' },
          },
        ],
      },
    ]);
    expect(r.modelCalls.map((c) => [c.provider, c.raw, c.inputTokens, c.outputTokens])).toEqual([
      ['anthropic', r.server.requests[0]!.response!.body, 900, 25],
      ['anthropic', r.server.requests[1]!.response!.body, 950, 35],
    ]);
    expect(r.flow.change?.files).toEqual([
      { path: 'a.txt', status: 'added', linesAdded: 1, linesRemoved: 0 },
    ]);
  });
});

describe('the stamps of a run', () => {
  it("come from the task's clock: the run, each model call and each tool call, a refused one too", async () => {
    const r = await runScripted({
      script: [
        reply('read_file', { path: 'README.md' }, 10, 10),
        reply('rm_rf', {}, 10, 10),
        submitEmptyChange,
      ],
      clock: { now: () => Date.parse('2031-05-01T12:00:00Z') },
    });
    expect(r.run.status).toBe('succeeded');
    expect(callList(r.toolCalls)).toEqual(['filesystem.read_file:ok', '.rm_rf:refused']);
    expect([
      r.run.startedAt,
      ...r.modelCalls.map((call) => call.startedAt),
      ...r.toolCalls.map((call) => call.startedAt),
    ]).toEqual(Array(6).fill('2031-05-01T12:00:00.000Z'));
  });
});
