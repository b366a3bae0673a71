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

export type ModelMessage =
  | { role: 'system'; content: string }
  | { role: 'user'; content: string }
  | { role: 'assistant'; content: string; toolCalls: ModelToolCall[] }
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
  /** The system prompt is `messages[0]` when present. */
  messages: ModelMessage[];
  tools: ModelToolDefinition[];
  /** The output budget the engine reserved; the adapter must pass it to the provider. */
  maxTokens: number;
  /** Aborted on the task's deadline or a kill; the adapter passes it to its HTTP call. */
  signal: AbortSignal;
}

export interface ModelUsage {
  /** Every input token, cached or not. */
  inputTokens: number;
  outputTokens: number;
  /** Of `inputTokens`, those read from the provider's prompt cache (absent when none were). */
  cachedInputTokens?: number;
  /** Of `inputTokens`, those written to the provider's prompt cache (absent when none were). */
  cacheWriteTokens?: number;
}

export type FinishReason = 'stop' | 'tool_calls' | 'length' | 'content_filter' | 'error' | 'other';

export interface ModelReply {
  text: string;
  toolCalls: ModelToolCall[];
  /** As the provider reported it; the engine reconciles its reservation with these. */
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
