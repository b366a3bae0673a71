import { createAnthropic } from '@ai-sdk/anthropic';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import type { LanguageModelV3 } from '@ai-sdk/provider';
import {
  startScriptedChatServer,
  type ScriptedChatServer,
  type ScriptedReply,
} from '@keel/testing/chat-server';
import {
  generateText,
  jsonSchema,
  stepCountIs,
  tool,
  type ModelMessage as SdkMessage,
  type ToolSet,
} from 'ai';
import { describe, expect, it, onTestFinished } from 'vitest';
import { generateOnce, type AiSdkCall } from '../src/models/aiSdk.js';
import type { ModelMessage, ModelRequest, ModelToolDefinition } from '../src/models/model.js';
import { providerSafeSchema } from '../src/models/toolSchema.js';

// Keel calls the provider's `doGenerate` itself rather than through `generateText` (whose zod
// re-validation of the whole conversation was the largest cost of a step). These tests hold the
// direct path to what `generateText` sends and returns, with `generateText` itself as the oracle:
// one request each way to the same scripted server, the two bodies compared whole.

const tools: ModelToolDefinition[] = [
  {
    name: 'read_file',
    description: 'Read a file.',
    inputSchema: { type: 'object', properties: { path: { type: 'string' } }, required: ['path'] },
  },
  {
    name: 'pick',
    description: 'One of two shapes.',
    inputSchema: {
      oneOf: [
        { type: 'object', properties: { a: { type: 'string' } }, required: ['a'] },
        { type: 'object', properties: { b: { type: 'number' } }, required: ['b'] },
      ],
    },
  },
];

/** Two parallel calls answered by consecutive tool messages, an error result, a bare empty turn, signed and redacted reasoning. */
const conversation: ModelMessage[] = [
  { role: 'system', content: 'You are the coding agent.' },
  { role: 'user', content: 'Fix the typo.' },
  {
    role: 'assistant',
    content: '',
    reasoning: [
      { text: 'Two files to read.', signature: 'sig-1' },
      { text: '', redacted: 'opaque' },
    ],
    toolCalls: [
      { id: 'call_a', name: 'read_file', arguments: { path: 'README.md' } },
      { id: 'call_b', name: 'read_file', arguments: 'not json' },
    ],
  },
  { role: 'tool', toolCallId: 'call_a', toolName: 'read_file', content: '# Keel\nTeh.', isError: false },
  { role: 'tool', toolCallId: 'call_b', toolName: 'read_file', content: '{"code":"BAD"}', isError: true },
  { role: 'assistant', content: 'Reading done.', toolCalls: [] },
  { role: 'assistant', content: '', toolCalls: [] },
  { role: 'user', content: 'Go on.' },
];

/** The same request through `generateText`, mapped the way Keel mapped it before the direct path. */
async function viaGenerateText(call: AiSdkCall, request: ModelRequest) {
  const replay = call.replayArguments ?? ((value: unknown) => value);
  const ephemeral = { anthropic: { cacheControl: { type: 'ephemeral' } } };
  const messages: SdkMessage[] = request.messages.map((message, index) => {
    const breakpoint =
      call.cacheBreakpoints === true && (message.role === 'system' || index === request.messages.length - 1);
    const extra = breakpoint ? { providerOptions: ephemeral } : {};
    switch (message.role) {
      case 'system':
      case 'user':
        return { role: message.role, content: message.content, ...extra };
      case 'assistant':
        if (message.toolCalls.length === 0 && message.reasoning === undefined)
          return { role: 'assistant', content: message.content, ...extra };
        return {
          role: 'assistant',
          content: [
            ...(message.reasoning ?? []).map((block) => ({
              type: 'reasoning' as const,
              text: block.text,
              providerOptions: {
                anthropic:
                  block.redacted === undefined
                    ? { signature: block.signature ?? '' }
                    : { redactedData: block.redacted },
              },
            })),
            ...(message.content === '' ? [] : [{ type: 'text' as const, text: message.content }]),
            ...message.toolCalls.map((toolCall) => ({
              type: 'tool-call' as const,
              toolCallId: toolCall.id,
              toolName: toolCall.name,
              input: replay(toolCall.arguments),
            })),
          ],
          ...extra,
        };
      case 'tool':
        return {
          role: 'tool',
          content: [
            {
              type: 'tool-result',
              toolCallId: message.toolCallId,
              toolName: message.toolName,
              output: { type: message.isError ? 'error-text' : 'text', value: message.content },
            },
          ],
          ...extra,
        };
    }
  });
  const set: ToolSet = {};
  request.tools.forEach((definition, index) => {
    set[definition.name] = tool({
      description: definition.description,
      inputSchema: jsonSchema(providerSafeSchema(definition.inputSchema) as never),
      ...(call.cacheBreakpoints === true && index === request.tools.length - 1
        ? { providerOptions: ephemeral }
        : {}),
    });
  });
  const result = await generateText({
    model: call.model,
    messages,
    allowSystemInMessages: true,
    tools: set,
    ...(call.providerOptions === undefined ? {} : { providerOptions: call.providerOptions }),
    maxOutputTokens: request.maxTokens,
    maxRetries: 0,
    stopWhen: stepCountIs(1),
  });
  return result.toolCalls.map((toolCall) => ({
    id: toolCall.toolCallId,
    name: toolCall.toolName,
    arguments: toolCall.input,
  }));
}

interface Case {
  name: string;
  call: (server: ScriptedChatServer) => AiSdkCall;
  /** Anthropic's wire format carries arguments as JSON objects: there its response parser refuses a `__proto__` member before Keel sees it. */
  argumentsAsText: boolean;
}

const cases: Case[] = [
  {
    name: 'openai-compatible',
    call: (server) => ({
      provider: 'openai-compatible',
      model: createOpenAICompatible({ baseURL: server.url, name: 'oc', apiKey: 'sk' }).chatModel(
        'm',
      ) as LanguageModelV3,
      providerOptions: { oc: { prompt_cache_key: 'keel/t/coding' } },
    }),
    argumentsAsText: true,
  },
  {
    name: 'anthropic',
    call: (server) => ({
      provider: 'anthropic',
      model: createAnthropic({ baseURL: server.url, apiKey: 'ak' }).messages('c') as LanguageModelV3,
      cacheBreakpoints: true,
      replayArguments: (value) => (typeof value === 'object' && value !== null ? value : {}),
    }),
    argumentsAsText: false,
  },
];

const request = (messages: ModelMessage[]): ModelRequest => ({
  messages,
  tools,
  maxTokens: 300,
  signal: new AbortController().signal,
});

async function serve(replies: ScriptedReply[]): Promise<ScriptedChatServer> {
  const server = await startScriptedChatServer({ script: replies });
  onTestFinished(() => server.close());
  return server;
}

describe.each(cases)('the direct provider call ($name) against generateText', ({ call, argumentsAsText }) => {
  it('sends the same body for a conversation with parallel calls, an error result, reasoning and empty turns', async () => {
    const server = await serve([{ text: 'ok' }, { text: 'ok' }]);
    await generateOnce(call(server), request(conversation));
    await viaGenerateText(call(server), request(conversation));
    expect(server.requests).toHaveLength(2);
    expect(server.requests[0]!.body).toEqual(server.requests[1]!.body);
    // The two tool results went out as the provider groups one turn's results (not compared with themselves only).
    const body = server.requests[0]!.body as { messages: unknown[] };
    expect(JSON.stringify(body)).toContain('call_b');
  });

  it('returns the same tool calls: blank, unparsable, unknown-tool and __proto__ arguments', async () => {
    const toolCalls = [
      { id: 't1', name: 'read_file', arguments: '' },
      { id: 't2', name: 'read_file', arguments: '{"path": ' },
      { id: 't3', name: 'nope', arguments: '{"a":1}' },
      { id: 't4', name: 'nope', arguments: '' },
      ...(argumentsAsText
        ? [{ id: 't5', name: 'read_file', arguments: '{"path":"a","__proto__":{"x":1}}' }]
        : []),
      { id: 't6', name: 'pick', arguments: '{"b":2}' },
    ];
    const server = await serve([{ toolCalls }, { toolCalls }]);
    const direct = await generateOnce(call(server), request(conversation.slice(0, 2)));
    const oracle = await viaGenerateText(call(server), request(conversation.slice(0, 2)));
    expect(direct.toolCalls).toEqual(oracle);
    expect(direct.toolCalls.map((toolCall) => toolCall.id)).toEqual(toolCalls.map((toolCall) => toolCall.id));
    // The SDK's parser refuses a prototype member: those arguments stay the raw text, never an object.
    expect(direct.toolCalls.find((toolCall) => toolCall.id === 't5')?.arguments).toBe(
      argumentsAsText ? '{"path":"a","__proto__":{"x":1}}' : undefined,
    );
  });
});

describe('the direct provider call refuses what generateText refused', () => {
  it('a tool call left unanswered before the next user message, before anything is sent', async () => {
    const server = await serve([{ text: 'never' }]);
    const unanswered: ModelMessage[] = [
      { role: 'user', content: 'a' },
      { role: 'assistant', content: '', toolCalls: [{ id: 'x1', name: 'read_file', arguments: {} }] },
      { role: 'user', content: 'b' },
    ];
    await expect(generateOnce(cases[0]!.call(server), request(unanswered))).rejects.toMatchObject({
      code: 'INTERNAL',
      message: 'openai-compatible: tool results are missing for tool calls x1',
    });
    expect(server.requests).toHaveLength(0);
  });

  it('a maxTokens that is not a positive integer', async () => {
    const server = await serve([{ text: 'never' }]);
    await expect(
      generateOnce(cases[0]!.call(server), { ...request(conversation.slice(0, 2)), maxTokens: 0 }),
    ).rejects.toMatchObject({
      code: 'INTERNAL',
      message: 'openai-compatible: maxOutputTokens must be a positive integer, got 0',
    });
    expect(server.requests).toHaveLength(0);
  });
});
