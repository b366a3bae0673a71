import { KeelError } from '@keel/kit/core';
import {
  APICallError,
  generateText,
  jsonSchema,
  stepCountIs,
  tool,
  type FinishReason as SdkFinishReason,
  type JSONSchema7,
  type LanguageModel,
  type ModelMessage as SdkMessage,
  type ToolSet,
} from 'ai';
import type {
  FinishReason,
  ModelMessage,
  ModelReasoning,
  ReasoningEffort,
  ModelReply,
  ModelRequest,
  ModelToolDefinition,
  ModelUsage,
} from './model.js';
import { providerSafeSchema } from './toolSchema.js';

export interface AiSdkCall {
  /** Our provider name, used in error messages (`openai-compatible`, `anthropic`). */
  provider: string;
  model: LanguageModel;
  /** How a tool call's arguments are written back into the history (providers differ on non-objects). */
  replayArguments?: (value: unknown) => unknown;
  /** Provider options for the whole call (OpenAI's `prompt_cache_key`). */
  providerOptions?: Record<string, Record<string, string>>;
  /**
   * How the provider takes a reasoning effort: its provider options, and the `maxOutputTokens` to
   * give the SDK so that what goes out as `max_tokens` is still the request's `maxTokens`.
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
   * The counts the response body itself reports, where the SDK would read a missing one as 0
   * (the OpenAI-compatible provider does): a count left out must stay unknown, not zero.
   */
  usageFromBody?: (body: unknown) => ModelUsage;
}

const ephemeral = { anthropic: { cacheControl: { type: 'ephemeral' } } };

/**
 * One model step through the AI SDK's `generateText`: no retries (the engine owns them), tools
 * without `execute` so the calls come back to the engine instead of running, and the reply mapped
 * to our {@link ModelReply}. Provider failures are thrown as `KeelError` naming provider and status.
 */
export async function generateOnce(call: AiSdkCall, request: ModelRequest): Promise<ModelReply> {
  const replay = call.replayArguments ?? ((value: unknown) => value);
  const reasoning =
    request.reasoningEffort === undefined
      ? undefined
      : call.reasoning?.(request.reasoningEffort, request.maxTokens);
  const providerOptions = mergeOptions(call.providerOptions, reasoning?.providerOptions);
  let result;
  try {
    result = await generateText({
      model: call.model,
      messages: request.messages.map((message, index) => {
        const sdk = toSdkMessage(message, replay);
        const breakpoint =
          call.cacheBreakpoints === true &&
          (message.role === 'system' || index === request.messages.length - 1);
        return breakpoint ? { ...sdk, providerOptions: ephemeral } : sdk;
      }),
      // Our messages come from the engine, never from a user, so system messages in them are ours.
      allowSystemInMessages: true,
      ...(request.tools.length === 0
        ? {}
        : { tools: toSdkTools(request.tools, call.cacheBreakpoints === true) }),
      ...(providerOptions === undefined ? {} : { providerOptions: providerOptions as never }),
      maxOutputTokens: reasoning?.maxOutputTokens ?? request.maxTokens,
      abortSignal: request.signal,
      maxRetries: 0,
      stopWhen: stepCountIs(1),
    });
  } catch (error) {
    throw toModelError(call.provider, error, request.signal);
  }
  return {
    text: result.text,
    // A call whose arguments did not parse comes back "invalid" with `input` = the raw text.
    toolCalls: result.toolCalls.map((toolCall) => ({
      id: toolCall.toolCallId,
      name: toolCall.toolName,
      arguments: toolCall.input,
    })),
    ...signedReasoning(result.reasoning),
    // A count the provider left out stays out: zero would undercount.
    usage: {
      ...(call.usageFromBody?.(result.response.body) ?? {
        inputTokens: result.usage.inputTokens,
        outputTokens: result.usage.outputTokens,
      }),
      ...cacheSplit(result.usage.inputTokenDetails),
    },
    finishReason: toFinishReason(result.finishReason),
    responseModel: result.response.modelId,
    raw: result.response.body,
  };
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
function signedReasoning(
  parts: ReadonlyArray<{
    text: string;
    providerMetadata?: Record<string, Record<string, unknown>> | undefined;
  }>,
): { reasoning?: ModelReasoning[] } {
  const blocks: ModelReasoning[] = [];
  for (const part of parts) {
    const meta = part.providerMetadata?.['anthropic'];
    if (typeof meta?.['signature'] === 'string')
      blocks.push({ text: part.text, signature: meta['signature'] });
    else if (typeof meta?.['redactedData'] === 'string')
      blocks.push({ text: '', redacted: meta['redactedData'] });
  }
  return blocks.length === 0 ? {} : { reasoning: blocks };
}

function toSdkMessage(message: ModelMessage, replay: (value: unknown) => unknown): SdkMessage {
  switch (message.role) {
    case 'system':
    case 'user':
      return { role: message.role, content: message.content };
    case 'assistant':
      if (message.toolCalls.length === 0 && message.reasoning === undefined)
        return { role: 'assistant', content: message.content };
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
      };
  }
}

/** The cached part of the input, as the provider reported it; nothing when nothing was cached. */
function cacheSplit(details: {
  cacheReadTokens?: number | undefined;
  cacheWriteTokens?: number | undefined;
}): { cachedInputTokens?: number; cacheWriteTokens?: number } {
  const read = details.cacheReadTokens ?? 0;
  const written = details.cacheWriteTokens ?? 0;
  return {
    ...(read > 0 ? { cachedInputTokens: read } : {}),
    ...(written > 0 ? { cacheWriteTokens: written } : {}),
  };
}

function toSdkTools(tools: ModelToolDefinition[], breakpoint: boolean): ToolSet {
  const set: ToolSet = {};
  for (const [index, definition] of tools.entries()) {
    set[definition.name] = tool({
      description: definition.description,
      inputSchema: jsonSchema(providerSafeSchema(definition.inputSchema) as JSONSchema7),
      // The tools come first in the prompt: a breakpoint on the last caches all of them.
      ...(breakpoint && index === tools.length - 1 ? { providerOptions: ephemeral } : {}),
    });
  }
  return set;
}

function toFinishReason(reason: SdkFinishReason): FinishReason {
  switch (reason) {
    case 'stop':
    case 'length':
    case 'error':
    case 'other':
      return reason;
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
