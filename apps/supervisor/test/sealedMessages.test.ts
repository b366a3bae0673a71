import { describe, expect, it } from 'vitest';
import { runTask } from '../src/engine/runTask.js';
import type { Model, ModelMessage, ModelReply, ModelRequest } from '../src/models/model.js';
import { builtinServers, createHarness, task } from './helpers.js';

// Keel keeps per message object what it computed of it once (its byte count, its stored body, its
// as-sent form): that holds only if a message is never changed after it was sent. The engine
// freezes each one as its request goes out; these tests hold every request of a task to that.

const reply = (toolCalls: ModelReply['toolCalls']): ModelReply => ({
  text: '',
  toolCalls,
  usage: { inputTokens: 10, outputTokens: 5 },
  finishReason: 'tool_calls',
  responseModel: 'm',
  raw: {},
});

/** Reads a file twice (with structured results in the history), then hands in; keeps every request. */
function recordingModel(requests: ModelRequest[]): Model {
  return {
    provider: 'playbook',
    model: 'm',
    async generate(request) {
      // Kept as handed over, not copied: the request must stay what was sent while the task goes on.
      requests.push(request);
      const n = requests.length;
      if (n <= 2) return reply([{ id: `c${n}`, name: 'read_file', arguments: { path: 'README.md' } }]);
      return reply([
        {
          id: 'c3',
          name: 'submit_change',
          arguments: { version: 'change.v1', summary: 'read it', files: [], commit: null },
        },
      ]);
    },
  };
}

const deeplyFrozen = (value: unknown): boolean =>
  value === null ||
  typeof value !== 'object' ||
  (Object.isFrozen(value) && Object.values(value).every(deeplyFrozen));

describe('messages are sealed once sent', () => {
  it('every request keeps the messages it was sent with, each frozen with its tool calls, arguments and structured results; a change throws', async () => {
    const h = await createHarness({
      config: {
        models: { m: { provider: 'playbook' } },
        servers: { filesystem: builtinServers.filesystem },
        agents: {
          planning: { model: 'm', tools: {} },
          coding: { model: 'm', tools: { filesystem: ['read_file'] } },
          review: { model: 'm', tools: {} },
        },
      },
    });
    const requests: ModelRequest[] = [];
    const outcome = await runTask({
      loaded: h.loaded,
      store: h.store,
      env: {},
      task: task({ mode: 'single', tests: null, deploy: null }),
      models: { m: recordingModel(requests) },
    });
    expect(outcome.run.status).toBe('succeeded');
    expect(requests.map((r) => r.messages.map((m) => m.role))).toEqual([
      ['system', 'user'],
      ['system', 'user', 'assistant', 'tool'],
      ['system', 'user', 'assistant', 'tool', 'assistant', 'tool'],
    ]);
    const last = requests.at(-1)!.messages;
    expect(last.map(deeplyFrozen)).toEqual(last.map(() => true));
    // The list is a frozen copy: the conversation grew after each call, the request did not.
    expect(Object.isFrozen(requests[0]!.messages)).toBe(true);
    expect(() => {
      (requests[0]!.messages as ModelMessage[]).push(last[2]!);
    }).toThrow(TypeError);
    const tool = last[3] as Extract<ModelMessage, { role: 'tool' }>;
    expect(tool.structured).toMatchObject({ path: 'README.md' });
    const call = (last[2] as Extract<ModelMessage, { role: 'assistant' }>).toolCalls[0]!;
    expect(() => {
      (call.arguments as { path: string }).path = 'elsewhere.md';
    }).toThrow(TypeError);
    expect(() => {
      (tool as { content: string }).content = 'changed';
    }).toThrow(TypeError);
  });
});
