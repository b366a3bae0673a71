import { KeelError, sha256Hex } from '@keel/kit';
import type { Context, Tracer } from '@opentelemetry/api';
import type { Clock } from '../../clock.js';
import { costOf, type Budget, type ModelReservation, type Reserve } from '../../limits/budget.js';
import type { ModelMessage, ModelReply, ModelToolDefinition } from '../../models/model.js';
import { inputTokenBound } from '../../models/tokens.js';
import { countUsage, type UsageWhenMissing } from '../../limits/usage.js';
import type { ModelCallRecord } from '../../store/taskStore.js';
import { GenAi, SpanKind, startSpan } from '../../telemetry/spans.js';
import { done, stopped, type Step, type Stop } from '../stop.js';
import type { AgentRun } from './call.js';
import { recordedReply, type Recorder } from './record.js';

/** What an agent used of its own caps (`agents.<role>.limits`) so far. */
export interface AgentUse {
  steps: number;
  tokens: number;
}

/**
 * A model call's reservation: one step, the input bound of exactly these messages and tools plus
 * the agent's `max_tokens`, within the task's limits and the agent's own caps.
 */
export const reserveModelCall = (
  budget: Pick<Budget, 'reserveModelCall'>,
  agent: Pick<AgentRun, 'config' | 'price'>,
  use: AgentUse,
  request: { messages: ModelMessage[]; tools: ModelToolDefinition[] },
): Reserve<ModelReservation> =>
  budget.reserveModelCall(inputTokenBound(request), agent.config.maxTokens, agent.price, {
    ...(agent.config.limits.steps === undefined ? {} : { steps: agent.config.limits.steps }),
    ...(agent.config.limits.tokens === undefined ? {} : { tokens: agent.config.limits.tokens }),
    usedSteps: use.steps,
    usedTokens: use.tokens,
  });

export interface ModelCallContext {
  taskId: string;
  tracer: Tracer | undefined;
  budget: Pick<Budget, 'settleModelCall' | 'releaseModelCall'>;
  /** `models.<name>.usageWhenMissing` of the model an agent uses (by its key in `models`). */
  usageWhenMissing: (model: string) => UsageWhenMissing;
  event: (type: string, data: unknown) => Promise<void>;
  /** The task's signal (a kill, the deadline): the provider call is cancelled with it. */
  signal: AbortSignal;
  recorder: Pick<Recorder, 'modelCall'>;
  /** Stamps the call's start in its record. */
  clock: Clock;
  /** Why the task's signal fired, as a stop. */
  abortStop: () => Stop;
  /** Tells the terminal (a `model` line) what the model answered. */
  progress: (agent: string, detail: string) => void;
}

/** One reserved model call: which agent asks, at which step of the task, under which span. */
export interface Turn {
  agent: AgentRun;
  step: number;
  use: AgentUse;
  parent: Context;
}

const isAbort = (error: unknown) =>
  error instanceof Error &&
  (error.name === 'AbortError' || error.name === 'TimeoutError' || /aborted/i.test(error.message));

/**
 * A reserved model call, as its steps: sent with the task's signal, settled against what the
 * provider reported (a count it left out at its bound; a refused call releases its reservation, a
 * cancelled one keeps it), and recorded whole before any tool call it asks for starts. Usage past
 * the reservation that crosses a limit stops the task.
 */
export async function callModel(
  ctx: ModelCallContext,
  turn: Turn,
  messages: ModelMessage[],
  tools: ModelToolDefinition[],
  reservation: ModelReservation,
): Promise<Step<ModelReply>> {
  const { agent } = turn;
  const span =
    ctx.tracer === undefined
      ? undefined
      : startSpan(
          ctx.tracer,
          `chat ${agent.model.model}`,
          turn.parent,
          {
            [GenAi.operation]: 'chat',
            [GenAi.provider]: agent.model.provider,
            [GenAi.requestModel]: agent.model.model,
            [GenAi.maxTokens]: reservation.maxTokens,
          },
          SpanKind.CLIENT,
        );
  const startedAt = new Date(ctx.clock.now());
  const started = performance.now();
  const record = (
    fields: Pick<
      ModelCallRecord,
      'responseModel' | 'raw' | 'reply' | 'inputTokens' | 'outputTokens' | 'costUsd' | 'error'
    >,
  ) =>
    ctx.recorder.modelCall({
      taskId: ctx.taskId,
      step: turn.step,
      agent: agent.role,
      provider: agent.model.provider,
      requestedModel: agent.model.model,
      systemSha256: sha256Hex(messages[0]?.role === 'system' ? messages[0].content : ''),
      request: { messages, tools, maxTokens: reservation.maxTokens },
      reservedInputTokens: reservation.inputTokens,
      reservedOutputTokens: reservation.maxTokens,
      latencyMs: performance.now() - started,
      startedAt: startedAt.toISOString(),
      ...fields,
    });
  let reply: ModelReply;
  try {
    reply = await agent.model.generate(
      { messages, tools, maxTokens: reservation.maxTokens, signal: ctx.signal },
      { taskId: ctx.taskId, agent: agent.role, step: turn.step, invocation: agent.invocation },
    );
  } catch (error) {
    const aborted = ctx.signal.aborted || isAbort(error);
    const message = (error as Error).message;
    // A refused request (an HTTP error, no connection) was not billed: its reservation is released.
    // A timeout, a cancellation or a connection lost mid-call may have been: it is kept, at the bound.
    const unbilled = !aborted && error instanceof KeelError && error.details?.['unbilled'] === true;
    if (unbilled) ctx.budget.releaseModelCall(reservation);
    else
      ctx.budget.settleModelCall(
        reservation,
        { inputTokens: reservation.inputTokens, outputTokens: reservation.maxTokens },
        agent.price,
      );
    span?.end(aborted ? 'cancelled' : 'provider_error');
    await record({
      responseModel: null,
      raw: null,
      reply: null,
      inputTokens: unbilled ? 0 : reservation.inputTokens,
      outputTokens: unbilled ? 0 : reservation.maxTokens,
      costUsd: unbilled ? 0 : reservation.costUsd,
      error: message,
    });
    if (aborted) return stopped(ctx.abortStop());
    return stopped({
      status: 'error',
      message: `model call failed (${agent.model.provider}:${agent.model.model}): ${message}`,
    });
  }
  const usage = countUsage(reply.usage, reservation, ctx.usageWhenMissing(agent.config.model), reply);
  const settlement = ctx.budget.settleModelCall(reservation, usage, agent.price);
  turn.use.tokens += usage.inputTokens + usage.outputTokens;
  span?.span.setAttributes({
    [GenAi.responseModel]: reply.responseModel,
    [GenAi.inputTokens]: usage.inputTokens,
    [GenAi.outputTokens]: usage.outputTokens,
    [GenAi.finishReasons]: [reply.finishReason],
  });
  span?.end(settlement.crossed === undefined ? undefined : 'limit_exceeded');
  // Committed before any tool call it asked for starts.
  await record({
    responseModel: reply.responseModel,
    raw: reply.raw,
    reply: recordedReply(reply),
    inputTokens: usage.inputTokens,
    outputTokens: usage.outputTokens,
    costUsd: costOf(agent.price, usage.inputTokens, usage.outputTokens),
    error: null,
  });
  if (usage.missing.length > 0)
    await ctx.event('usage_missing', {
      step: turn.step,
      agent: agent.role,
      missing: usage.missing,
      reported: reply.usage,
      counted: { inputTokens: usage.inputTokens, outputTokens: usage.outputTokens },
    });
  ctx.progress(
    agent.role,
    `${agent.model.model}: ${reply.toolCalls.length === 0 ? 'text' : reply.toolCalls.map((c) => c.name).join(', ')} (${usage.inputTokens}+${usage.outputTokens} tokens${usage.missing.length > 0 ? ', not reported: counted at the bound' : ''})`,
  );
  if (settlement.crossed !== undefined)
    return stopped({
      status: 'limit',
      limit: settlement.crossed.limit,
      message: settlement.crossed.message,
      overshoot: settlement.crossed.overshoot,
    });
  return done(reply);
}
