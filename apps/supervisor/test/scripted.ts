import { existsSync } from 'node:fs';
import path from 'node:path';
import {
  startScriptedChatServer,
  type ChatScript,
  type ScriptedChatCall,
  type ScriptedChatServer,
} from '@keel/testing/chat-server';
import { onTestFinished } from 'vitest';
import { runTask, type TaskOutcome } from '../src/engine/runTask.js';
import type { Clock } from '../src/clock.js';
import type { RetryPolicy } from '../src/engine/stages/modelCall.js';
import type { ModelMessage } from '../src/models/model.js';
import type { EventRecord, ModelCallRecord, ToolCallRecord } from '../src/store/taskStore.js';
import { createHarness, readTools, task, writeTools, type Harness } from './helpers.js';

/** A scripted model the agents reach through the OpenAI-compatible (or Anthropic) adapter. */
export async function serve(script: ChatScript): Promise<ScriptedChatServer> {
  const server = await startScriptedChatServer({ script });
  onTestFinished(() => server.close());
  return server;
}

export interface ScriptedRun extends TaskOutcome {
  h: Harness;
  server: ScriptedChatServer;
  modelCalls: ModelCallRecord[];
  toolCalls: ToolCallRecord[];
  events: EventRecord[];
  /** Whether a path exists in the task's workspace now. */
  exists: (file: string) => boolean;
}

const scriptedAgent = { model: 'gpt', tools: {} };

/**
 * Runs one task whose agents all use model `gpt` (`test-model` at `server.url`), with real
 * servers, git and SQLite. `config` is merged over that (limits, loops, sideEffects, prices...);
 * `taskFile` over `{ mode: 'single', tests: null, deploy: null }`.
 */
export async function runScripted(options: {
  script: ChatScript;
  config?: Record<string, unknown>;
  taskFile?: Record<string, unknown>;
  files?: Record<string, string>;
  provider?: 'openai-compatible' | 'anthropic';
  clock?: Clock;
  retry?: RetryPolicy;
}): Promise<ScriptedRun> {
  const server = await serve(options.script);
  const h = await createHarness({
    ...(options.files === undefined ? {} : { files: options.files }),
    config: {
      models: {
        gpt: { provider: options.provider ?? 'openai-compatible', model: 'test-model', baseURL: server.url },
      },
      prices: { 'test-model': { inputPerMTok: 0, outputPerMTok: 0 } },
      agents: {
        planning: {
          model: 'gpt',
          tools: { filesystem: readTools, git: ['git_status', 'git_log', 'git_diff'] },
        },
        coding: scriptedAgent,
        review: scriptedAgent,
      },
      ...options.config,
    },
  });
  const outcome = await runTask({
    loaded: h.loaded,
    store: h.store,
    env: {},
    task: task({ mode: 'single', tests: null, deploy: null, ...options.taskFile }),
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(options.retry === undefined ? {} : { retry: options.retry }),
  });
  return {
    ...outcome,
    h,
    server,
    modelCalls: await h.store.listModelCalls(outcome.run.id),
    toolCalls: await h.store.listToolCalls(outcome.run.id),
    events: await h.store.listEvents(outcome.run.id),
    exists: (file) => existsSync(path.join(h.repo.dir, file)),
  };
}

/** The tool calls as `server.tool:outcome`, for short exact assertions. */
export const callList = (calls: ToolCallRecord[]) => calls.map((c) => `${c.server}.${c.tool}:${c.outcome}`);

/** How the harness quotes a tool's answer to the model. */
export const quoted = (tool: string, status: string, body: string) =>
  `<tool_result tool="${tool}" status="${status}">\n${body}\n</tool_result>`;

/** A change.v1 that validates: nothing committed. */
export const emptyChange = {
  version: 'change.v1',
  summary: 'nothing to change',
  files: [],
  commit: null,
};

/** Our messages as the OpenAI chat-completions wire format carries them. */
export function asOpenAiMessages(messages: ModelMessage[]): unknown[] {
  return messages.map((m) => {
    switch (m.role) {
      case 'system':
      case 'user':
        return { role: m.role, content: m.content };
      case 'assistant':
        return {
          role: 'assistant',
          content: m.content === '' && m.toolCalls.length > 0 ? null : m.content,
          ...(m.toolCalls.length === 0
            ? {}
            : {
                tool_calls: m.toolCalls.map((c) => ({
                  id: c.id,
                  type: 'function',
                  function: { name: c.name, arguments: JSON.stringify(c.arguments) },
                })),
              }),
        };
      case 'tool':
        return { role: 'tool', tool_call_id: m.toolCallId, content: m.content };
    }
  });
}

/** The messages one request to the chat server carried, tool messages only. */
export const toolMessagesOf = (server: ScriptedChatServer, index: number) =>
  (server.requests[index]!.body.messages as Array<{ role: string }>).filter((m) => m.role === 'tool');

/** How the harness hands a human's hint to the model: a user message starting with this. */
export const hintPrefix = 'A human supervising this task says: ';

/** The user messages one request to the chat server carried. */
export const userMessages = (call: { body: { messages: Array<{ role: string; content: unknown }> } }) =>
  call.body.messages.filter((m) => m.role === 'user').map((m) => m.content);

export const heardHint = (call: ScriptedChatCall) =>
  userMessages(call).some((c) => typeof c === 'string' && c.startsWith(hintPrefix));

export const submitEmptyChange = { toolCalls: [{ name: 'submit_change', arguments: emptyChange }] };

/** Reads the same file over and over, until a human's hint arrives; then hands in. */
export const stuckReader: ChatScript = (call) =>
  heardHint(call)
    ? submitEmptyChange
    : { toolCalls: [{ name: 'read_file', arguments: { path: 'README.md' } }] };

/** A task run in-process against the scripted model until it escalates, in a harness whose config the bin can open. */
export async function escalatedWorld(script: ChatScript, config: Record<string, unknown>, limits = {}) {
  const server = await serve(script);
  const agent = { model: 'gpt', tools: { filesystem: writeTools } };
  const h = await createHarness({
    config: {
      models: { gpt: { provider: 'openai-compatible', model: 'test-model', baseURL: server.url } },
      prices: { 'test-model': { inputPerMTok: 0, outputPerMTok: 0 } },
      agents: { planning: { model: 'gpt', tools: { filesystem: readTools } }, coding: agent, review: agent },
      ...config,
    },
  });
  const { run } = await runTask({
    loaded: h.loaded,
    store: h.store,
    env: {},
    task: task({ mode: 'single', tests: null, deploy: null, limits }),
  });
  const [escalation] = await h.store.listApprovals({ taskId: run.id });
  return { h, server, run, escalation: escalation! };
}
