import { providerSafeSchema } from '../src/models/toolSchema.js';
import { KeelError } from '@keel/kit';
import {
  loopReplies,
  overreportingReplies,
  pingPongReplies,
  startScriptedChatServer,
  type ChatScript,
  type ScriptedChatServer,
} from '@keel/testing/chat-server';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { createAnthropicModel } from '../src/models/anthropic.js';
import type {
  FinishReason,
  Model,
  ModelMessage,
  ModelRequest,
  ModelToolDefinition,
} from '../src/models/model.js';
import { createOpenAICompatibleModel } from '../src/models/openaiCompatible.js';

const context = { taskId: 'task-1', agent: 'coding', step: 1, invocation: 1 };

const readFile: ModelToolDefinition = {
  name: 'read_file',
  description: 'Read a file inside the roots.',
  inputSchema: {
    type: 'object',
    properties: { path: { type: 'string', description: 'Relative path.' } },
    required: ['path'],
    additionalProperties: false,
  },
};
const writeFile: ModelToolDefinition = {
  name: 'write_file',
  description: 'Write a whole file.',
  inputSchema: {
    type: 'object',
    properties: { path: { type: 'string' }, content: { type: 'string' } },
    required: ['path', 'content'],
  },
};

const conversation: ModelMessage[] = [
  { role: 'system', content: 'You are the coding agent.' },
  { role: 'user', content: 'Fix the typo in README.md.' },
  {
    role: 'assistant',
    content: 'Reading it first.',
    toolCalls: [{ id: 'call_prev', name: 'read_file', arguments: { path: 'README.md' } }],
  },
  {
    role: 'tool',
    toolCallId: 'call_prev',
    toolName: 'read_file',
    content: '# Keel\nTeh harness.',
    isError: false,
  },
];

function request(overrides: Partial<ModelRequest> = {}): ModelRequest {
  return {
    messages: [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Say hello.' },
    ],
    tools: [],
    maxTokens: 256,
    signal: new AbortController().signal,
    ...overrides,
  };
}

async function serve(script: ChatScript): Promise<ScriptedChatServer> {
  const server = await startScriptedChatServer({ script });
  onTestFinished(() => server.close());
  return server;
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to reject');
}

interface AdapterCase {
  provider: string;
  model: string;
  create(server: ScriptedChatServer): Model;
  path: string;
  /** The body this protocol must carry for `conversation` with both tools and max 512 tokens. */
  conversationBody: Record<string, unknown>;
  authHeaders: Record<string, string>;
  /** The last message sent for a failed `read_file` result `{"code":"NOT_FOUND"}` of `call_x`. */
  failedToolResult: unknown;
  /** Each wire finish reason of the protocol and what the adapter must make of it. */
  finishReasons: Array<[wire: string, expected: FinishReason]>;
}

const cases: AdapterCase[] = [
  {
    provider: 'openai-compatible',
    model: 'gpt-test',
    create: (server) =>
      createOpenAICompatibleModel({
        baseURL: server.url,
        model: 'gpt-test',
        apiKey: 'sk-test',
        headers: { 'x-keel-run': 'run-1' },
      }),
    path: '/v1/chat/completions',
    conversationBody: {
      model: 'gpt-test',
      max_tokens: 512,
      messages: [
        { role: 'system', content: 'You are the coding agent.' },
        { role: 'user', content: 'Fix the typo in README.md.' },
        {
          role: 'assistant',
          content: 'Reading it first.',
          tool_calls: [
            {
              id: 'call_prev',
              type: 'function',
              function: { name: 'read_file', arguments: '{"path":"README.md"}' },
            },
          ],
        },
        { role: 'tool', tool_call_id: 'call_prev', content: '# Keel\nTeh harness.' },
      ],
      tools: [
        {
          type: 'function',
          function: {
            name: 'read_file',
            description: readFile.description,
            parameters: readFile.inputSchema,
          },
        },
        {
          type: 'function',
          function: {
            name: 'write_file',
            description: writeFile.description,
            parameters: writeFile.inputSchema,
          },
        },
      ],
      tool_choice: 'auto',
    },
    authHeaders: { authorization: 'Bearer sk-test', 'x-keel-run': 'run-1' },
    // Chat completions has no error flag on a tool message: the text has to say it.
    failedToolResult: { role: 'tool', tool_call_id: 'call_x', content: '{"code":"NOT_FOUND"}' },
    finishReasons: [
      ['stop', 'stop'],
      ['tool_calls', 'tool_calls'],
      ['length', 'length'],
      ['content_filter', 'content_filter'],
      ['something_new', 'other'],
    ],
  },
  {
    provider: 'anthropic',
    model: 'claude-test',
    create: (server) =>
      createAnthropicModel({
        baseURL: server.url,
        model: 'claude-test',
        apiKey: 'ak-test',
        headers: { 'x-keel-run': 'run-1' },
      }),
    path: '/v1/messages',
    conversationBody: {
      model: 'claude-test',
      max_tokens: 512,
      // Prompt caching: breakpoints on the last tool, the system prompt and the last message.
      system: [{ type: 'text', text: 'You are the coding agent.', cache_control: { type: 'ephemeral' } }],
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'Fix the typo in README.md.' }] },
        {
          role: 'assistant',
          content: [
            { type: 'text', text: 'Reading it first.' },
            { type: 'tool_use', id: 'call_prev', name: 'read_file', input: { path: 'README.md' } },
          ],
        },
        {
          role: 'user',
          content: [
            {
              type: 'tool_result',
              tool_use_id: 'call_prev',
              content: '# Keel\nTeh harness.',
              cache_control: { type: 'ephemeral' },
            },
          ],
        },
      ],
      tools: [
        { name: 'read_file', description: readFile.description, input_schema: readFile.inputSchema },
        {
          name: 'write_file',
          description: writeFile.description,
          input_schema: writeFile.inputSchema,
          cache_control: { type: 'ephemeral' },
        },
      ],
      tool_choice: { type: 'auto' },
    },
    authHeaders: { 'x-api-key': 'ak-test', 'anthropic-version': '2023-06-01', 'x-keel-run': 'run-1' },
    failedToolResult: {
      role: 'user',
      content: [
        {
          type: 'tool_result',
          tool_use_id: 'call_x',
          content: '{"code":"NOT_FOUND"}',
          is_error: true,
          cache_control: { type: 'ephemeral' },
        },
      ],
    },
    finishReasons: [
      ['end_turn', 'stop'],
      ['stop_sequence', 'stop'],
      ['tool_use', 'tool_calls'],
      ['max_tokens', 'length'],
      ['refusal', 'content_filter'],
      ['something_new', 'other'],
    ],
  },
];

describe.each(cases)('$provider adapter', (adapter) => {
  it('returns a plain text reply', async () => {
    const server = await serve([{ text: 'Hello.' }]);
    const reply = await adapter.create(server).generate(request(), context);

    const sent = server.requests[0];
    expect(sent?.path).toBe(adapter.path);
    expect(reply).toEqual({
      text: 'Hello.',
      toolCalls: [],
      // The server's documented default: a quarter of the request's bytes, a quarter of the reply's.
      usage: {
        inputTokens: Math.ceil(Buffer.byteLength(JSON.stringify(sent?.body)) / 4),
        outputTokens: Math.ceil(Buffer.byteLength('Hello.') / 4),
      },
      finishReason: 'stop',
      responseModel: adapter.model,
      raw: sent?.response?.body,
    });
    expect(adapter.create(server)).toMatchObject({ provider: adapter.provider, model: adapter.model });
  });

  it('returns two tool calls with their parsed arguments', async () => {
    const server = await serve([
      {
        text: 'Reading both.',
        toolCalls: [
          { id: 'call_a', name: 'read_file', arguments: { path: 'README.md' } },
          { id: 'call_b', name: 'write_file', arguments: { path: 'NOTES.md', content: 'line 1\nline 2' } },
        ],
      },
    ]);
    const reply = await adapter.create(server).generate(request({ tools: [readFile, writeFile] }), context);

    expect(reply.text).toBe('Reading both.');
    expect(reply.toolCalls).toEqual([
      { id: 'call_a', name: 'read_file', arguments: { path: 'README.md' } },
      { id: 'call_b', name: 'write_file', arguments: { path: 'NOTES.md', content: 'line 1\nline 2' } },
    ]);
    expect(reply.finishReason).toBe('tool_calls');
  });

  it('maps usage, the answering model and the finish reason as the provider reported them', async () => {
    const server = await serve([
      {
        text: 'Cut off',
        usage: { inputTokens: 1234, outputTokens: 56 },
        model: `${adapter.model}-2026-01-01`,
        finishReason: 'length',
      },
    ]);
    const reply = await adapter.create(server).generate(request(), context);

    expect({
      usage: reply.usage,
      responseModel: reply.responseModel,
      finishReason: reply.finishReason,
    }).toEqual({
      usage: { inputTokens: 1234, outputTokens: 56 },
      responseModel: `${adapter.model}-2026-01-01`,
      finishReason: 'length',
    });
  });

  it('maps every finish reason of the protocol', async () => {
    const server = await serve(adapter.finishReasons.map(([wire]) => ({ text: 'x', rawFinishReason: wire })));
    const model = adapter.create(server);
    const mapped: Array<[string, FinishReason]> = [];
    for (const [wire] of adapter.finishReasons) {
      mapped.push([wire, (await model.generate(request(), context)).finishReason]);
    }
    expect(mapped).toEqual(adapter.finishReasons);
  });

  it('reports usage beyond max_tokens verbatim', async () => {
    const server = await serve([{ text: 'Long', usage: { inputTokens: 10, outputTokens: 9000 } }]);
    const reply = await adapter.create(server).generate(request({ maxTokens: 100 }), context);

    expect(server.requests[0]?.body.max_tokens).toBe(100);
    expect(reply.usage).toEqual({ inputTokens: 10, outputTokens: 9000 });
  });

  it('sends exactly the system prompt, history, tool definitions and max_tokens it was given', async () => {
    const server = await serve([{ text: 'Done.' }]);
    await adapter
      .create(server)
      .generate(request({ messages: conversation, tools: [readFile, writeFile], maxTokens: 512 }), context);

    expect(server.requests).toHaveLength(1);
    expect(server.requests[0]?.body).toEqual(adapter.conversationBody);
    const headers = server.requests[0]?.headers ?? {};
    expect(Object.fromEntries(Object.keys(adapter.authHeaders).map((name) => [name, headers[name]]))).toEqual(
      adapter.authHeaders,
    );
  });

  it('records the raw response body exactly as the server sent it', async () => {
    const server = await serve([
      { text: 'x', toolCalls: [{ id: 'call_raw', name: 'read_file', arguments: { path: 'a' } }] },
    ]);
    const reply = await adapter.create(server).generate(request({ tools: [readFile] }), context);

    const sent = server.requests[0]?.response;
    expect(sent?.status).toBe(200);
    expect(reply.raw).toEqual(sent?.body);
  });

  it('rejects as soon as the signal aborts mid-delay, and the server sees the disconnect', async () => {
    // Far longer than the test timeout: only a working abort lets this test finish.
    const server = await serve([{ text: 'too late', delayMs: 10 * 60_000 }]);
    const controller = new AbortController();
    const pending = adapter.create(server).generate(request({ signal: controller.signal }), context);
    await vi.waitFor(() => expect(server.requests).toHaveLength(1));

    expect(server.requests[0]?.outcome).toBe('pending');
    const reason = new Error('task deadline');

    controller.abort(reason);

    // Passed on as is: the engine recognises its own abort reason.
    expect(await rejectionOf(pending)).toBe(reason);
    expect(await server.settled(0)).toBe('disconnected');
    expect(server.requests[0]?.response).toBeUndefined();
  });

  it.each([
    {
      status: 400,
      message: 'max_tokens: 99999 > 8192, the maximum for this model',
      code: 'INVALID_ARGUMENT',
      retryable: false,
    },
    { status: 500, message: 'upstream overloaded, try again', code: 'UNAVAILABLE', retryable: true },
  ])(
    'rejects an HTTP $status naming the provider, the status and its message',
    async ({ status, message, code, retryable }) => {
      const server = await serve([{ status, error: { message } }]);
      const error = await rejectionOf(adapter.create(server).generate(request(), context));

      // One request: the adapter leaves retries to the engine.
      expect(server.requests).toHaveLength(1);
      expect(error).toBeInstanceOf(KeelError);
      const keelError = error as KeelError;
      expect({ message: keelError.message, code: keelError.code, retryable: keelError.retryable }).toEqual({
        message: `${adapter.provider} answered HTTP ${status}: ${message}`,
        code,
        retryable,
      });
    },
  );

  it('fails loudly when the script has no reply left', async () => {
    const server = await serve([]);
    const error = await rejectionOf(adapter.create(server).generate(request(), context));

    expect((error as Error).message).toBe(
      `${adapter.provider} answered HTTP 500: scripted chat server: the script has 0 replies and request #0 asked for reply 1`,
    );
  });

  it('rejects as retryable when the provider cannot be reached', async () => {
    const server = await serve([]);
    await server.close();
    const error = await rejectionOf(adapter.create(server).generate(request(), context));

    expect(error).toBeInstanceOf(KeelError);
    expect({ code: (error as KeelError).code, retryable: (error as KeelError).retryable }).toEqual({
      code: 'UNAVAILABLE',
      retryable: true,
    });
    const { host } = new URL(server.url);
    expect((error as Error).message).toBe(
      `${adapter.provider}: cannot reach http://${host}${adapter.path}: connect ECONNREFUSED ${host}`,
    );
  });

  it('returns malformed tool-call arguments as the raw string', async () => {
    const server = await serve([
      {
        toolCalls: [
          { id: 'call_bad', name: 'read_file', arguments: '{"path": "README.md"' },
          { id: 'call_good', name: 'read_file', arguments: { path: 'a.md' } },
        ],
      },
    ]);
    const reply = await adapter.create(server).generate(request({ tools: [readFile] }), context);

    expect(reply.toolCalls).toEqual([
      { id: 'call_bad', name: 'read_file', arguments: '{"path": "README.md"' },
      { id: 'call_good', name: 'read_file', arguments: { path: 'a.md' } },
    ]);
  });

  it('marks a failed tool result as an error to the provider', async () => {
    const server = await serve([{ text: 'ok' }]);
    const messages: ModelMessage[] = [
      conversation[1]!,
      {
        role: 'assistant',
        content: '',
        toolCalls: [{ id: 'call_x', name: 'read_file', arguments: { path: 'nope' } }],
      },
      {
        role: 'tool',
        toolCallId: 'call_x',
        toolName: 'read_file',
        content: '{"code":"NOT_FOUND"}',
        isError: true,
      },
    ];
    await adapter.create(server).generate(request({ messages, tools: [readFile] }), context);

    const body = server.requests[0]?.body;
    expect(body.messages.at(-1)).toEqual(adapter.failedToolResult);
  });
});

describe('anthropic adapter history', () => {
  it('replays arguments that never parsed as an empty object, since tool_use input must be one', async () => {
    const server = await serve([{ text: 'ok' }]);
    const messages: ModelMessage[] = [
      { role: 'user', content: 'go' },
      {
        role: 'assistant',
        content: '',
        toolCalls: [{ id: 'call_bad', name: 'read_file', arguments: '{"path": ' }],
      },
      {
        role: 'tool',
        toolCallId: 'call_bad',
        toolName: 'read_file',
        content: 'arguments are not JSON',
        isError: true,
      },
    ];
    await createAnthropicModel({ baseURL: server.url, model: 'claude-test', apiKey: 'k' }).generate(
      request({ messages, tools: [readFile] }),
      context,
    );

    expect(server.requests[0]?.body.messages[1]).toEqual({
      role: 'assistant',
      content: [{ type: 'tool_use', id: 'call_bad', name: 'read_file', input: {} }],
    });
  });
});

describe('script helpers', () => {
  const model = (server: ScriptedChatServer) =>
    createOpenAICompatibleModel({ baseURL: server.url, model: 'gpt-test' });
  const callsOf = async (server: ScriptedChatServer, times: number) => {
    const replies = [];
    for (let i = 0; i < times; i += 1)
      replies.push(await model(server).generate(request({ tools: [readFile] }), context));
    return replies;
  };

  it('loopReplies answers the same tool call forever, with a fresh id each time', async () => {
    const server = await serve(loopReplies({ name: 'read_file', arguments: { path: 'a' } }));
    const replies = await callsOf(server, 3);

    expect(replies.map((reply) => reply.toolCalls)).toEqual(
      [0, 1, 2].map((index) => [{ id: `call_${index}_0`, name: 'read_file', arguments: { path: 'a' } }]),
    );
  });

  it('pingPongReplies alternates between its two replies', async () => {
    const server = await serve(pingPongReplies({ text: 'ping' }, { text: 'pong' }));
    const replies = await callsOf(server, 3);

    expect(replies.map((reply) => reply.text)).toEqual(['ping', 'pong', 'ping']);
  });

  it('overreportingReplies reports more output tokens than max_tokens allowed', async () => {
    const server = await serve(overreportingReplies([{ text: 'a' }], 50));
    const reply = await model(server).generate(request({ maxTokens: 200 }), context);

    expect(reply.usage).toEqual({ inputTokens: 1, outputTokens: 250 });
  });
});

describe('tool schemas a provider would refuse', () => {
  const search = {
    name: 'search',
    description: 'Searches by text or by id.',
    inputSchema: {
      type: 'object',
      description: 'What to find.',
      properties: { limit: { type: 'integer' } },
      oneOf: [
        { properties: { text: { type: 'string' } }, required: ['text'] },
        { properties: { id: { type: 'string' }, text: { type: 'number' } }, required: ['id'] },
      ],
    },
  };

  it('reach Anthropic as one object schema, the alternatives named in its description', async () => {
    const server = await serve([{ text: 'ok' }]);
    await createAnthropicModel({ baseURL: server.url, model: 'claude-test', apiKey: 'k' }).generate(
      request({ messages: [{ role: 'user', content: 'go' }], tools: [readFile, search] }),
      context,
    );
    expect(server.requests[0]?.body.tools).toEqual([
      { name: 'read_file', description: readFile.description, input_schema: readFile.inputSchema },
      {
        name: 'search',
        description: 'Searches by text or by id.',
        input_schema: {
          type: 'object',
          description: 'What to find.\nExactly one of these argument sets: text; id.',
          properties: { limit: { type: 'integer' }, text: { type: 'string' }, id: { type: 'string' } },
        },
        cache_control: { type: 'ephemeral' },
      },
    ]);
  });

  it('keep what every alternative requires, and allOf’s requirements', () => {
    expect(
      providerSafeSchema({
        type: 'object',
        required: ['repo'],
        anyOf: [
          { properties: { a: {}, b: {} }, required: ['a', 'b'] },
          { properties: { a: {} }, required: ['a'] },
        ],
        allOf: [{ properties: { c: {} }, required: ['c'] }],
      }),
    ).toEqual({
      type: 'object',
      required: ['repo', 'a', 'c'],
      properties: { a: {}, b: {}, c: {} },
      description: 'At least one of these argument sets: a + b; a.',
    });
    const plain = { type: 'object', properties: { x: {} } };
    expect(providerSafeSchema(plain)).toBe(plain);
  });
});
