import type {
  LanguageModelV3,
  LanguageModelV3CallOptions,
  LanguageModelV3Content,
  LanguageModelV3FinishReason,
  LanguageModelV3FunctionTool,
  LanguageModelV3Message,
  LanguageModelV3Prompt,
  SharedV3ProviderOptions,
} from '@ai-sdk/provider';
import { safeParseJSON } from '@ai-sdk/provider-utils';
import { KeelError } from '@keel/kit/core';
import { APICallError } from 'ai';
import type {
  FinishReason,
  ModelMessage,
  ModelReasoning,
  ReasoningEffort,
  ModelReply,
  ModelRequest,
  ModelToolCall,
  ModelToolDefinition,
  ModelUsage,
} from './model.js';
import { providerSafeSchema } from './toolSchema.js';

export interface AiSdkCall {
  /** Our provider name, used in error messages (`openai-compatible`, `anthropic`). */
  provider: string;
  /** A provider's language model (the AI SDK's provider specification, v3). */
  model: LanguageModelV3;
  /** How a tool call's arguments are written back into the history (providers differ on non-objects). */
  replayArguments?: (value: unknown) => unknown;
  /** Provider options for the whole call (OpenAI's `prompt_cache_key`). */
  providerOptions?: Record<string, Record<string, string>>;
  /**
   * How the provider takes a reasoning effort: its provider options, and the `maxOutputTokens` to
   * give the provider so that what goes out as `max_tokens` is still the request's `maxTokens`.
   */
  reasoning?: (
    effort: ReasoningEffort,
    maxTokens: number,
  ) => { providerOptions: Record<string, Record<string, unknown>>; maxOutputTokens: number };
  /**
   * Anthropic prompt caching: cache breakpoints on the stable prefix — the last tool, the system
   * prompt, and the last message (so the next call reads all of this one from the cache). Three of
   * the four Anthropic allows.
   */
  cacheBreakpoints?: boolean;
  /**
   * The counts the response body itself reports, where the provider would read a missing one as 0
   * (the OpenAI-compatible provider does): a count left out must stay unknown, not zero.
   */
  usageFromBody?: (body: unknown) => ModelUsage;
}

const ephemeral = { anthropic: { cacheControl: { type: 'ephemeral' } } };

/**
 * One model step, straight through the provider's `doGenerate` (the AI SDK's provider
 * specification): no retries (the engine owns them), tools the provider only describes to the model,
 * and the reply mapped to our {@link ModelReply}. Provider failures are thrown as `KeelError` naming
 * provider and status.
 *
 * Why not `generateText`: it re-validates the whole conversation against its zod message schema on
 * every call — the largest single cost of a step in `pnpm bench harness` (the prompt grows with the
 * task, so the check does too) — to guard input that here is built by the engine from typed
 * messages, never by a user. What `generateText` did that still matters is done here the same way
 * (`test/aiSdkDirect.test.ts` sends one conversation both ways and compares the HTTP bodies): the
 * prompt in the provider's shape, every tool call answered before the next turn, tool-call arguments parsed with the SDK's own JSON parser (an unparsable one kept as
 * its raw text), `maxOutputTokens` a positive integer.
 */
export async function generateOnce(call: AiSdkCall, request: ModelRequest): Promise<ModelReply> {
  const replay = call.replayArguments ?? ((value: unknown) => value);
  const reasoning =
    request.reasoningEffort === undefined
      ? undefined
      : call.reasoning?.(request.reasoningEffort, request.maxTokens);
  const providerOptions = mergeOptions(call.providerOptions, reasoning?.providerOptions);
  const maxOutputTokens = reasoning?.maxOutputTokens ?? request.maxTokens;
  let result;
  try {
    if (!Number.isInteger(maxOutputTokens) || maxOutputTokens < 1)
      throw new Error(`maxOutputTokens must be a positive integer, got ${maxOutputTokens}`);
    const options: LanguageModelV3CallOptions = {
      prompt: toPrompt(request.messages, replay, call.cacheBreakpoints === true),
      maxOutputTokens,
      abortSignal: request.signal,
      ...(request.tools.length === 0
        ? {}
        : {
            tools: toProviderTools(request.tools, call.cacheBreakpoints === true),
            toolChoice: { type: 'auto' as const },
          }),
      ...(providerOptions === undefined
        ? {}
        : { providerOptions: providerOptions as SharedV3ProviderOptions }),
    };
    result = await call.model.doGenerate(options);
  } catch (error) {
    throw toModelError(call.provider, error, request.signal);
  }
  const known = new Set(request.tools.map((definition) => definition.name));
  const toolCalls: ModelToolCall[] = [];
  for (const part of result.content)
    if (part.type === 'tool-call' && part.providerExecuted !== true)
      toolCalls.push({
        id: part.toolCallId,
        name: part.toolName,
        arguments: await parseArguments(part.input, known.has(part.toolName)),
      });
  const usage = result.usage;
  return {
    text: textOf(result.content),
    toolCalls,
    ...signedReasoning(result.content),
    // A count the provider left out stays out: zero would undercount.
    usage: {
      ...(call.usageFromBody?.(result.response?.body) ?? {
        inputTokens: usage.inputTokens.total,
        outputTokens: usage.outputTokens.total,
      }),
      ...cacheSplit(usage.inputTokens.cacheRead, usage.inputTokens.cacheWrite),
    },
    finishReason: toFinishReason(result.finishReason),
    responseModel: result.response?.modelId ?? call.model.modelId,
    raw: result.response?.body,
  };
}

/**
 * A tool call's arguments as the model wrote them, parsed by the SDK's JSON parser (which refuses a
 * `__proto__` or `constructor.prototype` member); an empty text is `{}` for a tool the request
 * offered; what does not parse stays the raw text, which the engine answers as a bad call.
 */
async function parseArguments(input: string, offered: boolean): Promise<unknown> {
  if (offered && input.trim() === '') return {};
  const parsed = await safeParseJSON({ text: input });
  return parsed.success ? parsed.value : input;
}

function textOf(content: LanguageModelV3Content[]): string {
  let text = '';
  for (const part of content) if (part.type === 'text') text += part.text;
  return text;
}

/**
 * The conversation in the provider's shape, every tool call answered before the next user or system
 * message. (Both providers group consecutive tool messages into one turn themselves.)
 */
function toPrompt(
  messages: readonly ModelMessage[],
  replay: (value: unknown) => unknown,
  breakpoints: boolean,
): LanguageModelV3Prompt {
  const prompt: LanguageModelV3Message[] = [];
  const unanswered = new Set<string>();
  for (const [index, message] of messages.entries()) {
    const breakpoint = breakpoints && (message.role === 'system' || index === messages.length - 1);
    const converted = toProviderMessage(message, replay, breakpoint ? ephemeral : undefined);
    if (converted.role === 'assistant') {
      for (const part of converted.content) if (part.type === 'tool-call') unanswered.add(part.toolCallId);
    } else if (converted.role === 'tool') {
      for (const part of converted.content)
        if (part.type === 'tool-result') unanswered.delete(part.toolCallId);
    } else if (unanswered.size > 0) throw missingResults(unanswered);
    prompt.push(converted);
  }
  if (unanswered.size > 0) throw missingResults(unanswered);
  return prompt;
}

function missingResults(ids: Set<string>): Error {
  return new Error(`tool results are missing for tool calls ${[...ids].join(', ')}`);
}

function toProviderMessage(
  message: ModelMessage,
  replay: (value: unknown) => unknown,
  providerOptions: SharedV3ProviderOptions | undefined,
): LanguageModelV3Message {
  const options = providerOptions === undefined ? {} : { providerOptions };
  switch (message.role) {
    case 'system':
      return { role: 'system', content: message.content, ...options };
    case 'user':
      return { role: 'user', content: [{ type: 'text', text: message.content }], ...options };
    case 'assistant':
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
          // A turn with tool calls or reasoning leaves an empty text out; a bare turn keeps it.
          ...(message.content === '' && (message.toolCalls.length > 0 || message.reasoning !== undefined)
            ? []
            : [{ type: 'text' as const, text: message.content }]),
          ...message.toolCalls.map((toolCall) => ({
            type: 'tool-call' as const,
            toolCallId: toolCall.id,
            toolName: toolCall.name,
            input: replay(toolCall.arguments),
          })),
        ],
        ...options,
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
        ...options,
      };
  }
}

/** Two sets of provider options as one, per provider. */
function mergeOptions(
  a: Record<string, Record<string, unknown>> | undefined,
  b: Record<string, Record<string, unknown>> | undefined,
): Record<string, Record<string, unknown>> | undefined {
  if (a === undefined || b === undefined) return a ?? b;
  const merged: Record<string, Record<string, unknown>> = { ...a };
  for (const [provider, options] of Object.entries(b)) merged[provider] = { ...merged[provider], ...options };
  return merged;
}

/**
 * The reasoning blocks a provider signed (Anthropic's thinking, or its redacted form), which must go
 * back with the turn they came in. Unsigned reasoning text (an OpenAI-compatible server's
 * `reasoning_content`) stays in the raw body only: servers are not asked to read it back, and some refuse it.
 */
function signedReasoning(content: LanguageModelV3Content[]): { reasoning?: ModelReasoning[] } {
  const blocks: ModelReasoning[] = [];
  for (const part of content) {
    if (part.type !== 'reasoning') continue;
    const meta = part.providerMetadata?.['anthropic'];
    if (typeof meta?.['signature'] === 'string')
      blocks.push({ text: part.text, signature: meta['signature'] });
    else if (typeof meta?.['redactedData'] === 'string')
      blocks.push({ text: '', redacted: meta['redactedData'] });
  }
  return blocks.length === 0 ? {} : { reasoning: blocks };
}

/** The cached part of the input, as the provider reported it; nothing when nothing was cached. */
function cacheSplit(
  cacheRead: number | undefined,
  cacheWrite: number | undefined,
): { cachedInputTokens?: number; cacheWriteTokens?: number } {
  const read = cacheRead ?? 0;
  const written = cacheWrite ?? 0;
  return {
    ...(read > 0 ? { cachedInputTokens: read } : {}),
    ...(written > 0 ? { cacheWriteTokens: written } : {}),
  };
}

function toProviderTools(tools: ModelToolDefinition[], breakpoint: boolean): LanguageModelV3FunctionTool[] {
  return tools.map((definition, index) => ({
    type: 'function',
    name: definition.name,
    description: definition.description,
    inputSchema: providerSafeSchema(definition.inputSchema),
    // The tools come first in the prompt: a breakpoint on the last caches all of them.
    ...(breakpoint && index === tools.length - 1 ? { providerOptions: ephemeral } : {}),
  }));
}

function toFinishReason(reason: LanguageModelV3FinishReason): FinishReason {
  switch (reason.unified) {
    case 'stop':
    case 'length':
    case 'error':
    case 'other':
      return reason.unified;
    case 'tool-calls':
      return 'tool_calls';
    case 'content-filter':
      return 'content_filter';
  }
}

const bodyExcerptChars = 500;

function toModelError(provider: string, error: unknown, signal: AbortSignal): unknown {
  // The engine aborted on purpose (deadline, kill); it recognises its own abort, so pass it on.
  if (signal.aborted) return error;
  if (APICallError.isInstance(error)) {
    const status = error.statusCode;
    if (status === undefined) {
      const reason = error.cause instanceof Error ? error.cause.message : error.message;
      return new KeelError('UNAVAILABLE', `${provider}: cannot reach ${error.url}: ${reason}`, {
        cause: error,
        retryable: true,
        // A connection that was never made carried no request: nothing can have been billed. A
        // connection lost later may have been, and the engine keeps its reservation.
        details: { provider, url: error.url, ...(neverConnected(error) ? { unbilled: true } : {}) },
      });
    }
    // Without a parsable error body the SDK's message is only the status text; the body says more.
    // OpenAI's error code (`context_length_exceeded`) says what the message may word differently.
    const code = (error.data as { error?: { code?: unknown } } | undefined)?.error?.code;
    const providerMessage =
      error.data === undefined && error.responseBody !== undefined && error.responseBody.trim() !== ''
        ? error.responseBody.slice(0, bodyExcerptChars)
        : typeof code === 'string' && !error.message.includes(code)
          ? `${error.message} (${code})`
          : error.message;
    return new KeelError(codeForStatus(status), `${provider} answered HTTP ${status}: ${providerMessage}`, {
      cause: error,
      retryable: error.isRetryable,
      details: {
        provider,
        status,
        providerMessage,
        // A provider that refused the request (4xx, 5xx) generated nothing, so billed nothing; a
        // 200 whose body did not parse may have been billed.
        ...(status >= 400 ? { unbilled: true } : {}),
        // Seconds or an HTTP date, as the provider sent it; the engine reads it against its own clock.
        ...(error.responseHeaders?.['retry-after'] === undefined
          ? {}
          : { retryAfter: error.responseHeaders['retry-after'] }),
      },
    });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new KeelError('INTERNAL', `${provider}: ${message}`, { cause: error, details: { provider } });
}

const unreachable = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/** Whether a failed fetch failed before any connection was made (its cause chain names why). */
function neverConnected(error: unknown): boolean {
  for (let cause: unknown = error, depth = 0; cause instanceof Error && depth < 8; depth++) {
    const code = (cause as Error & { code?: unknown }).code;
    if (typeof code === 'string' && unreachable.has(code)) return true;
    cause = cause.cause;
  }
  return false;
}

function codeForStatus(status: number): 'INVALID_ARGUMENT' | 'PERMISSION_DENIED' | 'UNAVAILABLE' {
  if (status === 401 || status === 403) return 'PERMISSION_DENIED';
  if (status === 408 || status === 409 || status === 429 || status >= 500) return 'UNAVAILABLE';
  return 'INVALID_ARGUMENT';
}
