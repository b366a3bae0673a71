/**
 * The one interface between the harness and a language model: messages and tool definitions in,
 * a reply out. Adapters are thin — they hold no state, make no retries and apply no policy; the
 * engine does all of that around `generate`.
 */

/** A tool call the model asked for. `arguments` is whatever the model wrote, parsed as JSON. */
export interface ModelToolCall {
  id: string;
  name: string;
  arguments: unknown;
}

/** How hard a reasoning model thinks before it answers (`agents.NAME.reasoningEffort`). */
export const reasoningEfforts = ['low', 'medium', 'high'] as const;
export type ReasoningEffort = (typeof reasoningEfforts)[number];

/**
 * A block of the model's reasoning, as the provider returned it. Anthropic signs its thinking
 * (or sends it redacted) and, with thinking on, refuses a tool-use turn whose assistant message
 * does not carry it back: adapters send it back unchanged.
 */
export interface ModelReasoning {
  text: string;
  signature?: string;
  /** A redacted block: the provider's opaque data, in place of the text. */
  redacted?: string;
}

export type ModelMessage =
  | { role: 'system'; content: string }
  | { role: 'user'; content: string }
  | { role: 'assistant'; content: string; toolCalls: ModelToolCall[]; reasoning?: ModelReasoning[] }
  | {
      role: 'tool';
      toolCallId: string;
      toolName: string;
      /** What the model reads: the tool's text, quoted as data. */
      content: string;
      isError: boolean;
      /** The tool's structured result; adapters do not send it (the playbook reads it). */
      structured?: unknown;
    };

/** A tool as the model sees it: JSON Schema of its input. */
export interface ModelToolDefinition {
  name: string;
  description: string;
  inputSchema: Record<string, unknown>;
}

export interface ModelRequest {
  /**
   * The system prompt is `messages[0]` when present. Frozen, as every message in it: the request as
   * sent, which the conversation growing afterwards does not change.
   */
  messages: readonly ModelMessage[];
  tools: ModelToolDefinition[];
  /**
   * The output budget the engine reserved, reasoning included; the adapter must pass it to the
   * provider so that the provider cannot bill more output than this.
   */
  maxTokens: number;
  /** The agent's reasoning effort, for providers that take one; absent: the provider's default. */
  reasoningEffort?: ReasoningEffort;
  /** Aborted on the task's deadline or a kill; the adapter passes it to its HTTP call. */
  signal: AbortSignal;
}

/** As the provider reported it: a count it left out is undefined (the engine settles it at its bound). */
export interface ModelUsage {
  /** Every input token, cached or not. */
  inputTokens: number | undefined;
  outputTokens: number | undefined;
  /** Of `inputTokens`, those read from the provider's prompt cache (absent when none were). */
  cachedInputTokens?: number;
  /** Of `inputTokens`, those written to the provider's prompt cache (absent when none were). */
  cacheWriteTokens?: number;
}

export type FinishReason = 'stop' | 'tool_calls' | 'length' | 'content_filter' | 'error' | 'other';

export interface ModelReply {
  text: string;
  toolCalls: ModelToolCall[];
  /** The reasoning blocks the provider returned, when it returned any. */
  reasoning?: ModelReasoning[];
  /** As the provider reported it; the engine reconciles its reservation with these (see `countUsage`). */
  usage: ModelUsage;
  finishReason: FinishReason;
  /** The model that answered, as the provider named it (may differ from the one requested). */
  responseModel: string;
  /** The provider's response body, recorded whole. */
  raw: unknown;
}

/** Where the call comes from; models may use it (the playbook does), adapters ignore it. */
export interface ModelCallContext {
  taskId: string;
  agent: string;
  /** The task's step number (model calls so far, all agents), from 1. */
  step: number;
  /** How many times this agent has been invoked in the task, from 1 (a rework round is the 2nd). */
  invocation: number;
}

export interface Model {
  /** `playbook`, `openai-compatible`, `anthropic`, `replay`. */
  readonly provider: string;
  /** The requested model name (the price table's key). */
  readonly model: string;
  generate(request: ModelRequest, context: ModelCallContext): Promise<ModelReply>;
}
