import type { AgentConfig, Price } from '../../config/schema.js';
import type { Classification } from '../../limits/irreversible.js';
import type { Effect } from '../../limits/sideEffects.js';
import type { CatalogTool } from '../../mcp/servers.js';
import type { Model, ModelToolCall } from '../../models/model.js';
import type { SpanHandle } from '../../telemetry/spans.js';

/** One invocation of an agent: its scope, model and counters. */
export interface AgentRun {
  role: string;
  invocation: number;
  config: AgentConfig;
  model: Model;
  price: Price | undefined;
  /** The tools this agent may call, by the name the model sees. */
  scope: Map<string, CatalogTool>;
  span: SpanHandle | undefined;
  /**
   * false for the orchestrator's checks whose results only the harness reads (never a model's
   * context): observed and recorded like any, but they cannot taint the task.
   */
  toModel?: boolean | undefined;
}

/** One admitted tool call on its way through the stages: classified, its effect sized. */
export interface ToolSlot {
  /** The role of the agent that asked for it. */
  agent: string;
  step: number;
  callIndex: number;
  call: ModelToolCall;
  tool: CatalogTool;
  args: Record<string, unknown>;
  /** See {@link AgentRun.toModel}. */
  toModel?: boolean | undefined;
  classification: Classification;
  effect: Effect;
}
