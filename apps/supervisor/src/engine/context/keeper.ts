import type { ModelMessage, ModelToolDefinition } from '../../models/model.js';
import {
  applyElisions,
  compact,
  messageBytes,
  type Anchor,
  type ContextDecision,
  type ContextPolicy,
} from './compact.js';

/** An agent's share of its model's window: the model's window and estimate, the agent's target. */
export type ContextSettings = Omit<ContextPolicy, 'maxTokens'>;

/** A request as compaction left it: the messages to send and what was decided, for the record. */
export interface PlannedRequest {
  messages: ModelMessage[];
  decision: ContextDecision;
}

/**
 * One agent invocation's context: which results it has elided so far, and the last count the
 * provider reported. It decides each request's elisions with {@link compact} — or, for a step
 * that was recorded (a resumed task, a replay), applies the recorded decision as it stands, so
 * a replay reproduces the requests even under another estimate.
 */
export class AgentContext {
  readonly settings: ContextSettings;
  readonly #recorded: (step: number) => ContextDecision | undefined;
  #elided: string[] = [];
  #anchor: Anchor | undefined;

  constructor(settings: ContextSettings, recorded: (step: number) => ContextDecision | undefined) {
    this.settings = settings;
    this.#recorded = recorded;
  }

  /** The request for `step`: compacted as `harder` says, or as recorded. */
  plan(
    messages: readonly ModelMessage[],
    tools: readonly ModelToolDefinition[],
    maxTokens: number,
    step: number,
    harder: boolean,
  ): PlannedRequest {
    const recorded = this.#recorded(step);
    if (recorded !== undefined) {
      this.#elided = [...recorded.elided];
      return { messages: applyElisions(messages, new Set(recorded.elided)), decision: recorded };
    }
    const planned = compact(
      messages,
      tools,
      this.#elided,
      this.#anchor,
      { ...this.settings, maxTokens },
      harder,
    );
    // Over the window at the target's cut: cut everything but the latest turn before sending.
    const result =
      planned.decision.fits || harder
        ? planned
        : compact(messages, tools, this.#elided, this.#anchor, { ...this.settings, maxTokens }, true);
    if (result !== planned) result.decision.reason = 'over_window';
    this.#elided = result.decision.elided;
    return result;
  }

  /** What the provider counted for the request just sent: later estimates start from it. */
  settle(sent: readonly ModelMessage[], inputTokens: number): void {
    if (inputTokens > 0) this.#anchor = { tokens: inputTokens, bytes: messageBytes(sent) };
  }
}
