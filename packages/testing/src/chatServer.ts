import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type ChatProtocol = 'openai' | 'anthropic';

export interface ScriptedToolCall {
  name: string;
  /**
   * What the model wrote. A string is the raw argument text and goes out verbatim, so a test can
   * send malformed JSON; any other value is serialised with `JSON.stringify`. Anthropic's wire
   * format carries an object, so there a string that parses as JSON is sent parsed and one that
   * does not is sent as a bare string (what a misbehaving provider would do).
   */
  arguments: unknown;
  /** Defaults to `call_<request index>_<position>` (OpenAI) or `toolu_<index>_<position>`. */
  id?: string;
}

/** Protocol-neutral finish reasons, sent as each protocol spells them. */
export type ScriptedFinishReason = 'stop' | 'tool_calls' | 'length' | 'content_filter';

/** One answer of the scripted model. */
export interface ScriptedReply {
  text?: string;
  /**
   * The model's reasoning: OpenAI-compatible `reasoning_content`; on Anthropic, a signed `thinking`
   * block first in the content, sent only when the request enabled thinking (as the API does).
   */
  reasoning?: string;
  toolCalls?: ScriptedToolCall[];
  /**
   * Reported verbatim, even when it exceeds the request's `max_tokens` or is negative (a
   * misreporting provider). When absent: input = ceil(request body bytes / 4), output = ceil(reply
   * bytes / 4), where the reply bytes are the text plus each tool call's name and argument text.
   * `null` sends no usage at all (as some local servers do); a `null` count leaves that count out.
   */
  usage?: { inputTokens: number | null; outputTokens: number | null } | null;
  /** Defaults to `tool_calls` when the reply has tool calls, `stop` otherwise. */
  finishReason?: ScriptedFinishReason;
  /** Sent as `finish_reason` / `stop_reason` verbatim, overriding `finishReason`. */
  rawFinishReason?: string;
  /** The model the response names; defaults to the request's `model`. */
  model?: string;
  /** Waits this long before answering; a client that disconnects meanwhile cancels the wait. */
  delayMs?: number;
  /** An HTTP error status; answered with an error body in the protocol's shape. */
  status?: number;
  /** The error to send (status defaults to 500 when only this is given). */
  error?: { type?: string; message: string };
  /** Extra response headers (`retry-after` on a 429, say). */
  headers?: Record<string, string>;
  /** Drops the connection without an answer: what the client sees of a connection reset. */
  reset?: boolean;
}

export interface ScriptedChatCall {
  protocol: ChatProtocol;
  /** The parsed JSON body the client sent. */
  body: any;
  /** The request's position in `server.requests`, from 0. */
  index: number;
}

export type ChatScript =
  readonly ScriptedReply[] | ((call: ScriptedChatCall) => ScriptedReply | Promise<ScriptedReply>);

/** One request the server received and what became of it. */
export interface RecordedChatRequest {
  index: number;
  /** `null` for a request to a path neither protocol serves (answered 404). */
  protocol: ChatProtocol | null;
  method: string;
  path: string;
  /** Lower-case names, as Node parses them. */
  headers: Record<string, string>;
  /** The parsed JSON body, or the raw text when it did not parse. */
  body: any;
  /** `pending` until answered, or `disconnected` when the client went away first. */
  outcome: 'pending' | 'answered' | 'disconnected';
  /** What the server sent, once it answered. */
  response?: { status: number; body: unknown };
}

export interface ScriptedChatServer {
  /** Base URL including `/v1`, e.g. `http://127.0.0.1:PORT/v1`. */
  readonly url: string;
  /** Every request so far, in arrival order. */
  readonly requests: RecordedChatRequest[];
  /** Resolves when request `index` is answered or its client disconnects. */
  settled(index: number): Promise<'answered' | 'disconnected'>;
  /** Stops listening, drops open connections and cancels pending delays. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface ScriptedChatServerOptions {
  script: ChatScript;
  /**
   * The model's context window in tokens (a request's body bytes / 4, plus its `max_tokens`).
   * A request over it is refused as the provider refuses it: HTTP 400 with OpenAI's
   * `context_length_exceeded` code, or Anthropic's "prompt is too long". Default: no window.
   */
  contextWindow?: number;
  /**
   * Reports cached input tokens for the prefix a request's prompt (tools, system prompt, messages,
   * in that order) shares with an earlier request's, as OpenAI counts them: in blocks of 128 tokens, from 1024 (`prompt_tokens_details.cached_tokens`;
   * Anthropic's `cache_read_input_tokens`, with `input_tokens` the uncached rest). Default: off.
   */
  promptCache?: boolean;
}

/** OpenAI caches prompts from this many tokens, in blocks of {@link cacheBlockTokens}. */
const cacheMinTokens = 1024;
const cacheBlockTokens = 128;

/**
 * A request as the provider lays out its prompt — tools, then the system prompt, then the messages
 * in order — whatever order the client's JSON has its fields in: a cache hit is a shared prefix of this.
 */
function promptOrder(body: {
  model?: unknown;
  tools?: unknown;
  system?: unknown;
  messages?: unknown;
}): Buffer {
  const messages = Array.isArray(body.messages) ? body.messages : [];
  return Buffer.from(
    JSON.stringify([body.model ?? null, body.tools ?? null, body.system ?? null]) +
      messages.map((m) => JSON.stringify(m)).join(''),
  );
}

/** The bytes two texts share from their start. */
function commonPrefixBytes(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/**
 * A local stand-in for a paid model API: a real HTTP server on 127.0.0.1 that answers OpenAI
 * chat-completions (`POST /v1/chat/completions`, also `/chat/completions`) and Anthropic messages
 * (`POST /v1/messages`) requests with non-streaming JSON shaped as those APIs shape it, taking each
 * answer from a script. It records every request so a test can assert exactly what a client sent,
 * and fails loudly (HTTP 500) when an array script runs out. Free of vitest, so benchmarks can use it.
 */
export async function startScriptedChatServer(
  options: ScriptedChatServerOptions,
): Promise<ScriptedChatServer> {
  const requests: RecordedChatRequest[] = [];
  const waiters = new Map<number, Array<(outcome: 'answered' | 'disconnected') => void>>();
  const pendingDelays = new Set<() => void>();
  let scriptCursor = 0;
  const seenBodies: Buffer[] = [];
  /** The thinking this server signed, by signature: a block sent back must match one. */
  const signed = new Map<string, string>();

  /** Tokens of this body's longest prefix shared with an earlier body, as a cache would serve them. */
  const cachedTokens = (body: Buffer, inputTokens: number): number => {
    let best = 0;
    for (const seen of seenBodies) best = Math.max(best, commonPrefixBytes(seen, body));
    seenBodies.push(body);
    const blocks = Math.floor(Math.floor(best / 4) / cacheBlockTokens) * cacheBlockTokens;
    return blocks < cacheMinTokens ? 0 : Math.min(blocks, inputTokens);
  };

  const settle = (record: RecordedChatRequest, outcome: 'answered' | 'disconnected') => {
    if (record.outcome !== 'pending') return;
    record.outcome = outcome;
    for (const resolve of waiters.get(record.index) ?? []) resolve(outcome);
    waiters.delete(record.index);
  };

  const nextReply = async (call: ScriptedChatCall): Promise<ScriptedReply> => {
    const { script } = options;
    if (typeof script === 'function') return script(call);
    const reply = script[scriptCursor];
    scriptCursor += 1;
    if (reply === undefined) {
      return {
        status: 500,
        error: {
          type: 'script_exhausted',
          message: `scripted chat server: the script has ${script.length} replies and request #${call.index} asked for reply ${scriptCursor}`,
        },
      };
    }
    return reply;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
    const protocol = protocolOf(req.method ?? '', path);
    const text = await readBody(req);
    const record: RecordedChatRequest = {
      index: requests.length,
      protocol,
      method: req.method ?? '',
      path,
      headers: flattenHeaders(req.headers),
      body: parseJson(text),
      outcome: 'pending',
    };
    requests.push(record);
    res.on('close', () => settle(record, res.writableFinished ? 'answered' : 'disconnected'));

    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      if (res.destroyed) return;
      record.response = { status, body };
      res.writeHead(status, { ...headers, 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };

    if (protocol === null) {
      send(404, {
        error: { type: 'not_found', message: `scripted chat server: no route for ${record.method} ${path}` },
      });
      return;
    }
    if (record.body === undefined || typeof record.body !== 'object' || record.body === null) {
      send(
        400,
        errorBody(protocol, 'invalid_request_error', 'scripted chat server: the body is not a JSON object'),
      );
      return;
    }
    if (record.body.stream === true) {
      // generateText never streams; a client that does is one these tests do not expect.
      send(
        400,
        errorBody(protocol, 'invalid_request_error', 'scripted chat server: streaming is not supported'),
      );
      return;
    }

    const bodyBytes = Buffer.byteLength(text);
    if (options.contextWindow !== undefined) {
      const inputTokens = Math.ceil(bodyBytes / 4);
      const body = record.body as { max_tokens?: unknown; max_completion_tokens?: unknown };
      const completion = Number(body.max_tokens ?? body.max_completion_tokens ?? 0) || 0;
      if (inputTokens + completion > options.contextWindow) {
        send(400, contextLengthError(protocol, options.contextWindow, inputTokens, completion));
        return;
      }
    }

    if (protocol === 'anthropic') {
      const refusal = thinkingRefusal(record.body, signed);
      if (refusal !== undefined) {
        send(400, errorBody(protocol, 'invalid_request_error', refusal));
        return;
      }
    }

    let reply: ScriptedReply;
    try {
      reply = await nextReply({ protocol, body: record.body, index: record.index });
    } catch (error) {
      send(
        500,
        errorBody(protocol, 'script_error', `scripted chat server: the script threw: ${String(error)}`),
      );
      return;
    }
    if (reply.delayMs !== undefined && reply.delayMs > 0) {
      const completed = await delay(reply.delayMs, res, pendingDelays);
      if (!completed) return;
    }
    if (reply.reset === true) {
      res.socket?.destroy();
      return;
    }
    if (reply.status !== undefined || reply.error !== undefined) {
      const status = reply.status ?? 500;
      send(
        status,
        errorBody(
          protocol,
          reply.error?.type ?? (status < 500 ? 'invalid_request_error' : 'api_error'),
          reply.error?.message ?? `scripted error ${status}`,
        ),
        reply.headers,
      );
      return;
    }
    const cached =
      options.promptCache === true && reply.usage === undefined
        ? cachedTokens(promptOrder(record.body), Math.ceil(bodyBytes / 4))
        : undefined;
    send(200, successBody(protocol, reply, record.body, bodyBytes, record.index, cached, signed));
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { type: 'server_error', message: String(error) } }));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= new Promise<void>((resolve, reject) => {
      for (const cancel of pendingDelays) cancel();
      server.close((error) => (error ? reject(error) : resolve()));
      server.closeAllConnections();
    });
    return closing;
  };

  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    settled(index) {
      const record = requests[index];
      if (record !== undefined && record.outcome !== 'pending') return Promise.resolve(record.outcome);
      return new Promise((resolve) => {
        const list = waiters.get(index) ?? [];
        list.push(resolve);
        waiters.set(index, list);
      });
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** A script that answers every request with the same tool call, for loop detection tests. */
export function loopReplies(toolCall: Omit<ScriptedToolCall, 'id'>): ChatScript {
  return () => ({ toolCalls: [{ ...toolCall }] });
}

/** A script that alternates between two replies forever (a, b, a, b, ...), for ping-pong detection. */
export function pingPongReplies(a: ScriptedReply, b: ScriptedReply): ChatScript {
  return ({ index }) => (index % 2 === 0 ? a : b);
}

/**
 * A script that plays `replies` in order but reports `extraTokens` more output tokens than each
 * request's `max_tokens` allowed: a provider that misreports, for reservation reconciling tests.
 */
export function overreportingReplies(replies: readonly ScriptedReply[], extraTokens = 1): ChatScript {
  let cursor = 0;
  return ({ body }) => {
    const reply = replies[cursor];
    cursor += 1;
    if (reply === undefined) {
      return {
        status: 500,
        error: {
          type: 'script_exhausted',
          message: `scripted chat server: the script has ${replies.length} replies`,
        },
      };
    }
    const maxTokens = typeof body.max_tokens === 'number' ? body.max_tokens : 0;
    return {
      ...reply,
      usage: { inputTokens: reply.usage?.inputTokens ?? 1, outputTokens: maxTokens + extraTokens },
    };
  };
}

function protocolOf(method: string, path: string): ChatProtocol | null {
  if (method !== 'POST') return null;
  if (path === '/v1/chat/completions' || path === '/chat/completions') return 'openai';
  if (path === '/v1/messages' || path === '/messages') return 'anthropic';
  return null;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function parseJson(text: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function flattenHeaders(headers: IncomingMessage['headers']): Record<string, string> {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) flat[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return flat;
}

/** Resolves true after `ms`, or false as soon as the client disconnects or the server closes. */
function delay(ms: number, res: ServerResponse, pending: Set<() => void>): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const finish = (completed: boolean) => {
      clearTimeout(timer);
      res.off('close', onClose);
      pending.delete(cancel);
      resolve(completed);
    };
    const onClose = () => finish(false);
    const cancel = () => finish(false);
    const timer = setTimeout(() => finish(true), ms);
    res.on('close', onClose);
    pending.add(cancel);
  });
}

function errorBody(protocol: ChatProtocol, type: string, message: string): unknown {
  return protocol === 'openai'
    ? { error: { message, type, param: null, code: null } }
    : { type: 'error', error: { type, message } };
}

/** How each API refuses a request over the model's context window. */
function contextLengthError(
  protocol: ChatProtocol,
  window: number,
  inputTokens: number,
  completion: number,
): unknown {
  if (protocol === 'openai')
    return {
      error: {
        message: `This model's maximum context length is ${window} tokens. However, you requested ${inputTokens + completion} tokens (${inputTokens} in the messages, ${completion} in the completion). Please reduce the length of the messages or completion.`,
        type: 'invalid_request_error',
        param: 'messages',
        code: 'context_length_exceeded',
      },
    };
  return {
    type: 'error',
    error: {
      type: 'invalid_request_error',
      message: `prompt is too long: ${inputTokens + completion} tokens > ${window} maximum`,
    },
  };
}

function argumentText(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function anthropicInput(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return value;
  }
}

const openaiFinish = {
  stop: 'stop',
  tool_calls: 'tool_calls',
  length: 'length',
  content_filter: 'content_filter',
};
const anthropicFinish = {
  stop: 'end_turn',
  tool_calls: 'tool_use',
  length: 'max_tokens',
  content_filter: 'refusal',
};

/**
 * What Anthropic refuses of a request with thinking on: a budget under 1024 or not under
 * `max_tokens`, and a last tool-use turn that does not start with the thinking the server signed
 * for it (a client must send thinking blocks back unchanged while tools are in use).
 */
function thinkingRefusal(body: any, signed: ReadonlyMap<string, string>): string | undefined {
  const thinking = body.thinking as { type?: unknown; budget_tokens?: unknown } | undefined;
  if (thinking?.type !== 'enabled') return undefined;
  const budget = Number(thinking.budget_tokens);
  if (!(budget >= 1024))
    return 'thinking.enabled.budget_tokens: Input should be greater than or equal to 1024';
  if (!(Number(body.max_tokens) > budget))
    return '`max_tokens` must be greater than `thinking.budget_tokens`.';
  const messages = Array.isArray(body.messages) ? (body.messages as any[]) : [];
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (m?.role !== 'assistant' || !Array.isArray(m.content)) continue;
    if (!m.content.some((block: any) => block?.type === 'tool_use')) continue;
    const first = m.content[0];
    if (first?.type === 'redacted_thinking') return undefined;
    if (first?.type !== 'thinking')
      return `messages.${i}.content.0.type: Expected \`thinking\` or \`redacted_thinking\`, but found \`${first?.type}\`. When \`thinking\` is enabled, a final \`assistant\` message must start with a thinking block (preceeding the lastmost set of \`tool_use\` and \`tool_result\` blocks).`;
    if (signed.get(first.signature) !== first.thinking)
      return `messages.${i}.content.0: Invalid \`signature\` in \`thinking\` block`;
    return undefined;
  }
  return undefined;
}

function successBody(
  protocol: ChatProtocol,
  reply: ScriptedReply,
  request: { model?: unknown },
  requestBytes: number,
  index: number,
  /** Cached input tokens to report, when the server caches prompts. */
  cached?: number,
  signed?: Map<string, string>,
): unknown {
  const toolCalls = reply.toolCalls ?? [];
  const text = reply.text ?? '';
  const reasoning = reply.reasoning ?? '';
  const replyBytes =
    Buffer.byteLength(text) +
    Buffer.byteLength(reasoning) +
    toolCalls.reduce(
      (sum, call) => sum + Buffer.byteLength(call.name) + Buffer.byteLength(argumentText(call.arguments)),
      0,
    );
  const usage =
    reply.usage === undefined
      ? { inputTokens: Math.ceil(requestBytes / 4), outputTokens: Math.ceil(replyBytes / 4) }
      : reply.usage;
  // A count left out is left out of the body, as a provider that does not report it would.
  const counts = (names: { input: string; output: string; total?: string }) =>
    usage === null
      ? {}
      : {
          usage: {
            ...(usage.inputTokens === null ? {} : { [names.input]: usage.inputTokens }),
            ...(usage.outputTokens === null ? {} : { [names.output]: usage.outputTokens }),
            ...(names.total === undefined || usage.inputTokens === null || usage.outputTokens === null
              ? {}
              : { [names.total]: usage.inputTokens + usage.outputTokens }),
          },
        };
  const model = reply.model ?? (typeof request.model === 'string' ? request.model : 'scripted');
  const finish = reply.finishReason ?? (toolCalls.length > 0 ? 'tool_calls' : 'stop');

  if (protocol === 'openai') {
    const message: Record<string, unknown> = {
      role: 'assistant',
      content: text === '' && toolCalls.length > 0 ? null : text,
      refusal: null,
      ...(reasoning === '' ? {} : { reasoning_content: reasoning }),
    };
    if (toolCalls.length > 0) {
      message['tool_calls'] = toolCalls.map((call, position) => ({
        id: call.id ?? `call_${index}_${position}`,
        type: 'function',
        function: { name: call.name, arguments: argumentText(call.arguments) },
      }));
    }
    return {
      id: `chatcmpl-scripted-${index}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model,
      choices: [
        { index: 0, message, logprobs: null, finish_reason: reply.rawFinishReason ?? openaiFinish[finish] },
      ],
      ...(usage === null
        ? {}
        : {
            usage: {
              ...counts({ input: 'prompt_tokens', output: 'completion_tokens', total: 'total_tokens' }).usage,
              ...(cached === undefined ? {} : { prompt_tokens_details: { cached_tokens: cached } }),
            },
          }),
    };
  }
  const content: unknown[] = [];
  if (reasoning !== '' && (request as { thinking?: { type?: unknown } }).thinking?.type === 'enabled') {
    const signature = `scripted-signature-${index}`;
    signed?.set(signature, reasoning);
    content.push({ type: 'thinking', thinking: reasoning, signature });
  }
  if (text !== '') content.push({ type: 'text', text });
  toolCalls.forEach((call, position) => {
    content.push({
      type: 'tool_use',
      id: call.id ?? `toolu_${index}_${position}`,
      name: call.name,
      input: anthropicInput(call.arguments),
    });
  });
  return {
    id: `msg_scripted_${index}`,
    type: 'message',
    role: 'assistant',
    model,
    content,
    stop_reason: reply.rawFinishReason ?? anthropicFinish[finish],
    stop_sequence: null,
    ...(usage === null
      ? {}
      : {
          usage: {
            // Anthropic counts cached tokens apart: input_tokens is the uncached rest.
            ...(usage.inputTokens === null ? {} : { input_tokens: usage.inputTokens - (cached ?? 0) }),
            ...(usage.outputTokens === null ? {} : { output_tokens: usage.outputTokens }),
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: cached ?? 0,
          },
        }),
  };
}
