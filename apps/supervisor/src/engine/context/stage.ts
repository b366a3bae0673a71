import { dateOf, type Clock } from '../../clock.js';
import type { AgentConfig } from '../../config/schema.js';
import type { ModelMessage, ModelToolCall } from '../../models/model.js';
import type { ModelCallRecord } from '../../store/taskStore.js';
import { refusal, type ToolAnswer } from '../stages/observe.js';
import type { Recorder } from '../stages/record.js';
import { recordable } from '../stages/record.js';
import type { Stop } from '../stop.js';
import type { ContextDecision } from './compact.js';
import { AgentContext } from './keeper.js';
import { recall, recallToolName } from './recall.js';

/** A model's window as the config gives it (`models.NAME.contextWindow`, `bytesPerToken`). */
export interface ModelWindow {
  window: number;
  bytesPerToken: number;
}

/** Where the session finds windows and recorded decisions. */
export interface ContextOptions {
  /** By model key: the models with a context window. */
  windows: ReadonlyMap<string, ModelWindow>;
  /** By step: the decisions a resumed task or a replay applies as recorded. */
  recorded: ReadonlyMap<number, ContextDecision>;
}

/** An agent invocation's context keeper, when its model has a window. */
export function agentContext(
  options: ContextOptions | undefined,
  config: Pick<AgentConfig, 'model' | 'context'>,
): AgentContext | undefined {
  if (options === undefined) return undefined;
  const window = options.windows.get(config.model);
  const recorded = (step: number) => options.recorded.get(step);
  if (window !== undefined)
    return new AgentContext(
      {
        window: window.window,
        bytesPerToken: window.bytesPerToken,
        target: config.context.target,
        low: config.context.cutTo,
      },
      recorded,
    );
  // A recording that was compacted is replayed compacted (and with recall), whatever the config says now.
  const [first] = options.recorded.values();
  if (first === undefined) return undefined;
  return new AgentContext(
    { window: first.window, bytesPerToken: first.bytesPerToken, target: first.target, low: first.low },
    recorded,
  );
}

/** The decisions a task's model call records hold, by step (the last try of a step wins). */
export function recordedDecisions(records: readonly ModelCallRecord[]): Map<number, ContextDecision> {
  const byStep = new Map<number, ContextDecision>();
  for (const record of records) {
    const context = (record.request as { context?: ContextDecision } | null)?.context;
    if (record.reply !== null && context !== undefined) byStep.set(record.step, context);
  }
  return byStep;
}

// OpenAI's code, OpenAI's and compatible servers' wording, Anthropic's.
const contextLengthPattern =
  /context_length_exceeded|maximum context length|context window|prompt is too long|too many tokens/i;

/** A model call the provider refused because the request is longer than its window. */
export const refusedAsTooLong = (stop: Stop) =>
  stop.status === 'error' && contextLengthPattern.test(stop.message);

/** The stop of a request that cannot fit its model's window, even with everything elidable elided. */
export function cannotFit(step: number, decision: ContextDecision, maxTokens: number, why?: string): Stop {
  return {
    status: 'limit',
    limit: 'context_window',
    message: `step ${step}'s request cannot fit the model's context window of ${decision.window} tokens: ${why ?? `about ${decision.estimate} input tokens + ${maxTokens} output reserved, with every older tool result (${decision.elided.length}) elided`}; the system prompt, the task and the latest turn are never elided — raise models.NAME.contextWindow if the model has more, or lower the agent's maxTokens`,
  };
}

/**
 * The supervisor's `recall` call: an elided result read again from the agent's own messages,
 * recorded like a tool call (server `keel`); a bad ref or offset is a tool error the model can fix.
 */
export async function answerRecall(
  ctx: { taskId: string; clock: Clock; recorder: Pick<Recorder, 'toolCall'> },
  slot: { agent: string; step: number; callIndex: number; call: ModelToolCall },
  source: readonly ModelMessage[],
): Promise<ToolAnswer> {
  const startedAt = dateOf(ctx.clock).toISOString();
  const recalled = recall(source, slot.call.arguments);
  await ctx.recorder.toolCall({
    taskId: ctx.taskId,
    step: slot.step,
    callIndex: slot.callIndex,
    agent: slot.agent,
    server: 'keel',
    tool: recallToolName,
    idempotencyKey: null,
    arguments: recordable(slot.call.arguments),
    result: recalled.ok ? { structured: recalled.structured } : { error: recalled.error },
    resultBytes: recalled.ok ? Buffer.byteLength(recalled.text) : 0,
    latencyMs: 0,
    outcome: recalled.ok ? 'ok' : 'error',
    errorCode: recalled.ok ? null : recalled.error.code,
    irreversible: false,
    effect: null,
    startedAt,
  });
  if (!recalled.ok) return refusal(slot.call, recalled.error);
  return {
    // The page is the earlier message's own text: already quoted as that tool's data.
    message: {
      role: 'tool',
      toolCallId: slot.call.id,
      toolName: recallToolName,
      content: recalled.text,
      isError: false,
    },
    result: undefined,
  };
}
