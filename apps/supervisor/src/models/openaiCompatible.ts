import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { generateOnce } from './aiSdk.js';
import { createHttpFetch, type Fetch } from './httpFetch.js';
import type { Model, ModelUsage } from './model.js';

export interface OpenAICompatibleModelOptions {
  /** The API root including its version segment, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:11434/v1`. */
  baseURL: string;
  model: string;
  /** Sent as `Authorization: Bearer <apiKey>`; local servers usually need none. */
  apiKey?: string;
  /** The provider's name in the AI SDK's metadata; defaults to `openai-compatible`. */
  name?: string;
  headers?: Record<string, string>;
  /** Send `prompt_cache_key` (task and agent) so one agent's requests reach the same prompt cache. */
  promptCacheKey?: boolean;
  /** How requests are sent; default {@link createHttpFetch} (Node's HTTP client, kept-alive connections). */
  fetch?: Fetch;
}

/**
 * A {@link Model} for any server speaking OpenAI's chat-completions protocol (OpenAI, Ollama, vLLM,
 * llama.cpp server) through the AI SDK's `@ai-sdk/openai-compatible` provider. One non-streaming
 * request per `generate`, no retries and no state; the request's `maxTokens` goes out as `max_tokens`.
 */
export function createOpenAICompatibleModel(options: OpenAICompatibleModelOptions): Model {
  const provider = createOpenAICompatible({
    baseURL: options.baseURL,
    name: options.name ?? 'openai-compatible',
    ...(options.apiKey === undefined ? {} : { apiKey: options.apiKey }),
    ...(options.headers === undefined ? {} : { headers: options.headers }),
    fetch: options.fetch ?? createHttpFetch(),
  });
  const languageModel = provider.chatModel(options.model);
  return {
    provider: 'openai-compatible',
    model: options.model,
    generate: (request, context) =>
      generateOnce(
        {
          provider: 'openai-compatible',
          model: languageModel,
          usageFromBody,
          // `reasoning_effort`; reasoning tokens come out of `max_tokens` as the provider counts them.
          reasoning: (effort, maxTokens) => ({
            providerOptions: { [options.name ?? 'openai-compatible']: { reasoningEffort: effort } },
            maxOutputTokens: maxTokens,
          }),
          ...(options.promptCacheKey === true
            ? {
                providerOptions: {
                  [options.name ?? 'openai-compatible']: {
                    prompt_cache_key: `keel/${context.taskId}/${context.agent}`,
                  },
                },
              }
            : {}),
        },
        request,
      ),
  };
}

const count = (value: unknown) => (typeof value === 'number' ? value : undefined);

/** `usage.prompt_tokens` and `usage.completion_tokens` as the body has them: absent stays absent. */
function usageFromBody(body: unknown): ModelUsage {
  const usage = (body as { usage?: unknown } | null | undefined)?.usage;
  if (usage === null || typeof usage !== 'object') return { inputTokens: undefined, outputTokens: undefined };
  const { prompt_tokens: input, completion_tokens: output } = usage as Record<string, unknown>;
  return { inputTokens: count(input), outputTokens: count(output) };
}
