import { createAnthropic } from '@ai-sdk/anthropic';
import { generateOnce } from './aiSdk.js';
import { createHttpFetch, type Fetch } from './httpFetch.js';
import type { Model, ReasoningEffort } from './model.js';
import { thinkingBudget } from './reasoning.js';

export interface AnthropicModelOptions {
  /** Defaults to `https://api.anthropic.com/v1`. */
  baseURL?: string;
  model: string;
  /** Sent as `x-api-key`. The caller passes it; the adapter never reads the environment. */
  apiKey?: string;
  headers?: Record<string, string>;
  /** How requests are sent; default {@link createHttpFetch} (Node's HTTP client, kept-alive connections). */
  fetch?: Fetch;
}

const defaultBaseURL = 'https://api.anthropic.com/v1';

/**
 * A {@link Model} for Anthropic's messages API through the AI SDK's `@ai-sdk/anthropic` provider.
 * One non-streaming request per `generate`, no retries and no state; the request's `maxTokens`
 * goes out as `max_tokens`.
 */
export function createAnthropicModel(options: AnthropicModelOptions): Model {
  const provider = createAnthropic({
    // Both given explicitly: the provider would otherwise fall back to ANTHROPIC_BASE_URL and
    // ANTHROPIC_API_KEY, and only the bin reads the environment.
    baseURL: options.baseURL ?? defaultBaseURL,
    apiKey: options.apiKey ?? '',
    ...(options.headers === undefined ? {} : { headers: options.headers }),
    fetch: options.fetch ?? createHttpFetch(),
  });
  const languageModel = provider.messages(options.model);
  return {
    provider: 'anthropic',
    model: options.model,
    generate: (request) =>
      generateOnce(
        {
          provider: 'anthropic',
          model: languageModel,
          replayArguments: toToolUseInput,
          cacheBreakpoints: true,
          reasoning: thinking,
        },
        request,
      ),
  };
}

/**
 * Extended thinking within the reserved `maxTokens`: the SDK sends `max_tokens` = its
 * `maxOutputTokens` + the thinking budget, so it gets `maxTokens` less the budget.
 */
function thinking(effort: ReasoningEffort, maxTokens: number) {
  const budget = thinkingBudget(effort, maxTokens);
  if (budget === undefined) return { providerOptions: {}, maxOutputTokens: maxTokens };
  return {
    providerOptions: { anthropic: { thinking: { type: 'enabled', budgetTokens: budget } } },
    maxOutputTokens: maxTokens - budget,
  };
}

/**
 * Anthropic rejects a `tool_use` whose input is not an object. Arguments the model wrote that did
 * not parse (kept as the raw string) are replayed as `{}`; the tool result after them says why.
 */
function toToolUseInput(value: unknown): unknown {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? value : {};
}
