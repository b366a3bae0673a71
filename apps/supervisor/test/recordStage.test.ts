import { describe, expect, it, onTestFinished } from 'vitest';
import { tempDir } from '@keel/testing';
import { ResumeState } from '../src/engine/resume.js';
import type { ToolSlot } from '../src/engine/stages/call.js';
import {
  createRecorder,
  failureFields,
  recordedReply,
  refusalRecord,
  replyFromRecord,
  resultFields,
  resultFromRecord,
  sentRecord,
} from '../src/engine/stages/record.js';
import type { Effect } from '../src/limits/sideEffects.js';
import type { ToolResult } from '../src/mcp/servers.js';
import type { ModelReply } from '../src/models/model.js';
import { createSqliteTaskStore } from '../src/store/sqliteTaskStore.js';
import type { ModelCallRecord } from '../src/store/taskStore.js';
import { ownerWriter } from './helpers.js';

const onFenced = () => undefined;
const clock = { now: () => Date.parse('2026-12-01T09:00:00Z') };

async function openStore() {
  const store = createSqliteTaskStore(await tempDir('keel-record-'));
  onTestFinished(() => store.close());
  return store;
}

const written: Effect = { computable: true, files: [{ path: 'a.txt', linesAdded: 2, linesRemoved: 1 }] };

const slot = (callIndex: number, args: Record<string, unknown>): ToolSlot => ({
  agent: 'coding',
  step: 3,
  callIndex,
  call: { id: `c-${callIndex}`, name: 'write_file', arguments: args },
  tool: {
    server: 'filesystem',
    name: 'write_file',
    description: '',
    inputSchema: {},
    annotations: { readOnlyHint: false },
  },
  args,
  classification: { irreversible: false },
  effect: written,
});

const sent = (callIndex: number) => ({
  idempotencyKey: `keel-key-${callIndex}`,
  startedAt: '2026-12-01T09:00:00.000Z',
});

const modelCall = (step: number, reply: ModelReply): ModelCallRecord => ({
  taskId: 't-1',
  step,
  agent: 'coding',
  provider: 'openai-compatible',
  requestedModel: 'gpt',
  responseModel: reply.responseModel,
  systemSha256: '0'.repeat(64),
  request: { messages: [], tools: [], maxTokens: 512 },
  raw: reply.raw,
  reply: recordedReply(reply),
  reservedInputTokens: 100,
  reservedOutputTokens: 512,
  inputTokens: reply.usage.inputTokens,
  outputTokens: reply.usage.outputTokens,
  costUsd: 0,
  latencyMs: 12,
  startedAt: '2026-12-01T09:00:00.000Z',
  error: null,
});

describe('the record stage', () => {
  it('hands back from its row what the server answered, the effect and what a call that threw said', async () => {
    const store = await openStore();
    const writer = await ownerWriter(store, 't-1');
    const recorder = createRecorder({ writer, taskId: 't-1', resume: undefined, clock, onFenced });
    const failed: ToolResult = {
      isError: true,
      text: 'no such file: b.txt',
      structured: { path: 'b.txt' },
      error: {
        code: 'NOT_FOUND',
        message: 'no such file: b.txt',
        hint: 'list the directory',
        retryable: false,
      },
      bytes: 33,
    };
    const answered: ToolResult = {
      isError: false,
      text: 'wrote a.txt',
      structured: { path: 'a.txt', sha256: 'ab' },
      error: undefined,
      bytes: 40,
    };
    await recorder.toolCall(
      sentRecord('t-1', slot(0, { path: 'b.txt' }), sent(0), resultFields(failed, 5, written)),
    );
    await recorder.toolCall(
      sentRecord('t-1', slot(1, { path: 'a.txt' }), sent(1), resultFields(answered, 6, null)),
    );
    await recorder.toolCall(
      sentRecord('t-1', slot(2, { path: 'c.txt' }), sent(2), failureFields('server gone', false, 7, written)),
    );
    await recorder.toolCall(
      sentRecord('t-1', slot(3, { path: 'd.txt' }), sent(3), failureFields('aborted', true, 8, written)),
    );
    const rows = await store.listToolCalls('t-1');
    expect(rows.map((row) => resultFromRecord(row))).toEqual([
      { result: failed, effect: written },
      { result: answered, effect: { computable: true, files: [] } },
      {
        result: {
          isError: true,
          text: '',
          structured: undefined,
          error: { code: 'MCP_ERROR', message: 'server gone' },
          bytes: 0,
        },
        effect: written,
      },
      {
        result: {
          isError: true,
          text: '',
          structured: undefined,
          error: { code: 'CANCELLED', message: 'aborted' },
          bytes: 0,
        },
        effect: written,
      },
    ]);
    expect(recorder.toolCalls).toEqual([
      { server: 'filesystem', tool: 'write_file', latencyMs: 5, ok: false, irreversible: false },
      { server: 'filesystem', tool: 'write_file', latencyMs: 6, ok: true, irreversible: false },
      { server: 'filesystem', tool: 'write_file', latencyMs: 7, ok: false, irreversible: false },
      { server: 'filesystem', tool: 'write_file', latencyMs: 8, ok: false, irreversible: false },
    ]);
  });

  it('hands back a recorded model reply as the provider gave it', async () => {
    const store = await openStore();
    const writer = await ownerWriter(store, 't-1');
    const reply: ModelReply = {
      text: 'writing it',
      toolCalls: [{ id: 'c-0', name: 'write_file', arguments: { path: 'a.txt', content: 'a\n' } }],
      usage: { inputTokens: 90, outputTokens: 30 },
      finishReason: 'tool_calls',
      responseModel: 'gpt-2026-11',
      raw: { id: 'chatcmpl-1', choices: [] },
    };
    await createRecorder({ writer, taskId: 't-1', resume: undefined, clock, onFenced }).modelCall(
      modelCall(1, reply),
    );
    const [row] = await store.listModelCalls('t-1');
    expect(replyFromRecord(row!)).toEqual(reply);
  });

  it('records nothing twice for a resumed task, and still counts the calls it repeats', async () => {
    const store = await openStore();
    const writer = await ownerWriter(store, 't-1');
    const first = createRecorder({ writer, taskId: 't-1', resume: undefined, clock, onFenced });
    const reply: ModelReply = {
      text: '',
      toolCalls: [],
      usage: { inputTokens: 1, outputTokens: 1 },
      finishReason: 'stop',
      responseModel: 'gpt',
      raw: null,
    };
    const refused = refusalRecord(
      't-1',
      { step: 3, callIndex: 1, agent: 'coding', call: { id: 'c-1', name: 'rm_rf', arguments: {} } },
      { code: 'UNKNOWN_TOOL', message: "there is no tool named 'rm_rf'" },
      '2026-12-01T09:00:01.000Z',
    );
    const written0 = sentRecord(
      't-1',
      slot(0, { path: 'a.txt' }),
      sent(0),
      failureFields('x', false, 1, written),
    );
    await first.event('agent_started', { agent: 'coding' });
    await first.modelCall(modelCall(3, reply));
    await first.toolCall(written0);
    await first.toolCall(refused);

    const resume = new ResumeState(
      await store.listModelCalls('t-1'),
      await store.listToolCalls('t-1'),
      await store.listEvents('t-1'),
    );
    const again = createRecorder({ writer, taskId: 't-1', resume, clock, onFenced });
    await again.event('agent_started', { agent: 'coding' });
    await again.event('agent_started', { agent: 'coding' });
    await again.modelCall(modelCall(3, reply));
    await again.modelCall(modelCall(4, reply));
    await again.toolCall(written0);
    await again.toolCall(refused);
    await again.toolCall(
      sentRecord('t-1', slot(2, { path: 'c.txt' }), sent(2), failureFields('y', false, 2, written)),
    );

    expect((await store.listEvents('t-1')).map((e) => `${e.type} ${e.at}`)).toEqual([
      'agent_started 2026-12-01T09:00:00.000Z',
      'agent_started 2026-12-01T09:00:00.000Z',
    ]);
    expect((await store.listModelCalls('t-1')).map((m) => m.step)).toEqual([3, 4]);
    expect((await store.listToolCalls('t-1')).map((t) => `${t.step}:${t.callIndex}:${t.outcome}`)).toEqual([
      '3:0:error',
      '3:1:refused',
      '3:2:error',
    ]);
    expect(again.toolCalls.map((line) => `${line.server}.${line.tool}:${line.ok}`)).toEqual([
      'filesystem.write_file:false',
      '.rm_rf:false',
      'filesystem.write_file:false',
    ]);
  });
});
