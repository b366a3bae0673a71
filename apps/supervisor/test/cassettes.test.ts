import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ScriptedReply } from '@keel/testing/chat-server';
import { describe, expect, it, onTestFinished } from 'vitest';
import { runTask } from '../src/engine/runTask.js';
import { startCassetteServer, startRecordingProxy, type Cassette } from './cassette.js';
import { createHarness, readTools, task } from './helpers.js';
import { callList, emptyChange, serve } from './scripted.js';

/**
 * The OpenAI-compatible and Anthropic adapters against recorded HTTP exchanges, offline. The
 * cassettes were recorded from the scripted chat server through a recording proxy; to record them
 * again: KEEL_RECORD_CASSETTES=1 pnpm vitest run test/cassettes.test.ts
 */
const recording = process.env['KEEL_RECORD_CASSETTES'] === '1';
const cassetteFile = (provider: string) =>
  fileURLToPath(new URL(`./cassettes/${provider}.json`, import.meta.url));

const script: ScriptedReply[] = [
  {
    text: 'Reading the README first.',
    toolCalls: [{ name: 'read_file', arguments: { path: 'README.md' } }],
    usage: { inputTokens: 1500, outputTokens: 25 },
  },
  {
    toolCalls: [
      { name: 'write_file', arguments: { path: 'NOTES.md', content: '# notes\n\nfrom a cassette\n' } },
    ],
    usage: { inputTokens: 1700, outputTokens: 40 },
  },
  {
    toolCalls: [{ name: 'submit_change', arguments: emptyChange }],
    usage: { inputTokens: 1900, outputTokens: 30 },
  },
];

async function runAgainst(provider: 'openai-compatible' | 'anthropic', baseURL: string) {
  const h = await createHarness({
    config: {
      // Single mode gives the coding agent every tool of every server: one server keeps the cassettes small.
      servers: { filesystem: { builtin: 'filesystem', args: ['--root', '.'] } },
      models: { gpt: { provider, model: 'test-model', baseURL } },
      prices: { 'test-model': { inputPerMTok: 3, outputPerMTok: 15 } },
      agents: {
        planning: { model: 'gpt', tools: { filesystem: readTools } },
        coding: { model: 'gpt', tools: { filesystem: ['read_file', 'write_file'] } },
        review: { model: 'gpt', tools: { filesystem: readTools } },
      },
    },
  });
  const outcome = await runTask({
    loaded: h.loaded,
    store: h.store,
    env: {},
    task: task({ mode: 'single', tests: null, deploy: null }),
  });
  return {
    ...outcome,
    modelCalls: await h.store.listModelCalls(outcome.run.id),
    toolCalls: await h.store.listToolCalls(outcome.run.id),
  };
}

describe.each(['openai-compatible', 'anthropic'] as const)('the %s adapter from a cassette', (provider) => {
  it.runIf(recording)('records the exchanges with the scripted chat server', async () => {
    const upstream = await serve(script);
    const proxy = await startRecordingProxy(upstream.url);
    onTestFinished(() => proxy.close());
    const r = await runAgainst(provider, proxy.url);
    expect(r.run.status).toBe('succeeded');
    writeFileSync(cassetteFile(provider), `${JSON.stringify(proxy.cassette, null, 2)}\n`);
  });

  it.skipIf(recording)(
    'runs a task offline against the recorded exchanges, request for request',
    async () => {
      const cassette = JSON.parse(readFileSync(cassetteFile(provider), 'utf8')) as Cassette;
      expect(cassette.interactions.length).toBe(3);
      const server = await startCassetteServer(cassette);
      onTestFinished(() => server.close());
      const r = await runAgainst(provider, server.url);
      expect(server.mismatches).toEqual([]);
      expect(server.served()).toBe(3);
      expect(r.run.status).toBe('succeeded');
      expect(callList(r.toolCalls)).toEqual(['filesystem.read_file:ok', 'filesystem.write_file:ok']);
      // What the adapter recorded is what the cassette answered, and its usage is read from it.
      expect(r.modelCalls.map((m) => m.raw)).toEqual(cassette.interactions.map((i) => i.response.body));
      expect(r.modelCalls.map((m) => [m.inputTokens, m.outputTokens])).toEqual(
        script.map((s) => [s.usage!.inputTokens, s.usage!.outputTokens]),
      );
      expect(r.run.costUsd).toBeCloseTo((5100 * 3 + 95 * 15) / 1e6, 12);
      expect(cassette.interactions.map((i) => i.request.path)).toEqual(
        Array(3).fill(provider === 'anthropic' ? '/v1/messages' : '/v1/chat/completions'),
      );
    },
  );
});
