import { KeelError, sha256Hex } from '@keel/kit/core';
import type { Context, Tracer } from '@opentelemetry/api';
import type { Clock } from '../../clock.js';
import { costOf, type Budget, type ModelReservation, type Reserve } from '../../limits/budget.js';
import type { ModelMessage, ModelReply, ModelToolDefinition } from '../../models/model.js';
import { inputTokenBound } from '../../models/tokens.js';
import { countUsage, type UsageWhenMissing } from '../../limits/usage.js';
import type { ModelCallRecord } from '../../store/taskStore.js';
import { GenAi, SpanKind, startSpan } from '../../telemetry/spans.js';
import type { ContextDecision } from '../context/compact.js';
import { done, stopped, type Step, type Stop } from '../stop.js';
import type { AgentRun } from './call.js';
import { messagesAsSent, recordedReply } from '../recordedReply.js';
import { sealMessages } from '../sealed.js';
import type { Recorder } from './record.js';

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
  request: { messages: readonly ModelMessage[]; tools: ModelToolDefinition[] },
  retry = false,
): Reserve<ModelReservation> =>
  budget.reserveModelCall(
    inputTokenBound(request),
    agent.config.maxTokens,
    agent.price,
    {
      ...(agent.config.limits.steps === undefined ? {} : { steps: agent.config.limits.steps }),
      ...(agent.config.limits.tokens === undefined ? {} : { tokens: agent.config.limits.tokens }),
      usedSteps: use.steps,
      usedTokens: use.tokens,
    },
    retry,
  );

/**
 * How a provider fault is retried: a 429, a 5xx or a connection reset is asked again up to
 * `attempts` tries in all, after `Retry-After` when the provider sent one, else after an
 * exponential backoff from `baseMs` (capped at `maxMs`) with equal jitter. Each try is reserved
 * under the limits again and recorded as the step's next attempt.
 */
export interface RetryPolicy {
  attempts: number;
  baseMs: number;
  maxMs: number;
  /** In [0, 1): the jitter's draw. */
  random: () => number;
  /** Waits `ms`, or until `signal` fires (a kill, the deadline). */
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
}

const abortableSleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    if (signal.aborted) done();
    else signal.addEventListener('abort', done, { once: true });
  });

export const defaultRetry: RetryPolicy = {
  attempts: 4,
  baseMs: 500,
  maxMs: 30_000,
  random: Math.random,
  sleep: abortableSleep,
};

/** `Retry-After` as milliseconds from `now`: delta-seconds or an HTTP date; undefined when unreadable. */
export function retryAfterMs(value: unknown, now: number): number | undefined {
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** How long to wait before try `attempt + 1` after `error`, or undefined when it is not retried. */
export function retryDelay(
  error: unknown,
  attempt: number,
  policy: RetryPolicy,
  now: number,
): number | undefined {
  if (attempt >= policy.attempts) return undefined;
  if (!(error instanceof KeelError) || !error.retryable) return undefined;
  const asked = retryAfterMs(error.details?.['retryAfter'], now);
  if (asked !== undefined) return asked;
  const backoff = Math.min(policy.maxMs, policy.baseMs * 2 ** (attempt - 1));
  return Math.round(backoff / 2 + (backoff / 2) * policy.random());
}

export interface ModelCallContext {
  taskId: string;
  tracer: Tracer | undefined;
  budget: Pick<Budget, 'settleModelCall' | 'releaseModelCall' | 'reserveModelCall' | 'msLeft'>;
  /** Provider faults retried; default {@link defaultRetry}. */
  retry?: RetryPolicy;
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
  /** What compaction decided for this request (when the model has a window), kept in its record. */
  context?: ContextDecision;
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
  conversation: readonly ModelMessage[],
  tools: ModelToolDefinition[],
  reserved: ModelReservation,
): Promise<Step<ModelReply>> {
  let reservation = reserved;
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
  // Never changed from here on: what is cached per message stays true of it (sealed.ts). The list
  // itself is a frozen copy: the conversation grows after the call, the request as sent does not.
  sealMessages(conversation);
  const messages: readonly ModelMessage[] = Object.freeze([...conversation]);
  let startedAt = new Date(ctx.clock.now());
  let started = performance.now();
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
      request: {
        messages: messagesAsSent(messages) as ModelMessage[],
        tools,
        maxTokens: reservation.maxTokens,
        ...(agent.config.reasoningEffort === undefined
          ? {}
          : { reasoningEffort: agent.config.reasoningEffort }),
        ...(turn.context === undefined ? {} : { context: turn.context }),
      },
      reservedInputTokens: reservation.inputTokens,
      reservedOutputTokens: reservation.maxTokens,
      latencyMs: performance.now() - started,
      startedAt: startedAt.toISOString(),
      ...fields,
    });
  const retry = ctx.retry ?? defaultRetry;
  let reply: ModelReply;
  for (let attempt = 1; ; attempt++) {
    try {
      reply = await agent.model.generate(
        {
          messages,
          tools,
          maxTokens: reservation.maxTokens,
          ...(agent.config.reasoningEffort === undefined
            ? {}
            : { reasoningEffort: agent.config.reasoningEffort }),
          signal: ctx.signal,
        },
        { taskId: ctx.taskId, agent: agent.role, step: turn.step, invocation: agent.invocation },
      );
      break;
    } catch (error) {
      const aborted = ctx.signal.aborted || isAbort(error);
      const message = (error as Error).message;
      // A refused request (an HTTP error, no connection) was not billed: its reservation is
      // released. A timeout, a cancellation or a connection lost mid-call may have been: it is
      // kept, at the bound.
      const unbilled = !aborted && error instanceof KeelError && error.details?.['unbilled'] === true;
      if (unbilled) ctx.budget.releaseModelCall(reservation);
      else
        ctx.budget.settleModelCall(
          reservation,
          { inputTokens: reservation.inputTokens, outputTokens: reservation.maxTokens },
          agent.price,
        );
      await record({
        responseModel: null,
        raw: null,
        reply: null,
        inputTokens: unbilled ? 0 : reservation.inputTokens,
        outputTokens: unbilled ? 0 : reservation.maxTokens,
        costUsd: unbilled ? 0 : reservation.costUsd,
        error: message,
      });
      const failed = `model call failed (${agent.model.provider}:${agent.model.model})`;
      const wait = aborted ? undefined : retryDelay(error, attempt, retry, ctx.clock.now());
      if (wait === undefined || wait >= ctx.budget.msLeft()) {
        span?.end(aborted ? 'cancelled' : 'provider_error');
        if (aborted) return stopped(ctx.abortStop());
        const tries = attempt === 1 ? '' : ` (after ${attempt} tries)`;
        return stopped({
          status: 'error',
          message:
            wait === undefined
              ? `${failed}${tries}: ${message}`
              : `${failed}: ${message}; the retry it asks for (in ${wait} ms) falls past the wall-clock limit`,
        });
      }
      ctx.progress(
        agent.role,
        `${failed}, try ${attempt} of ${retry.attempts}: ${message}; again in ${wait} ms`,
      );
      await retry.sleep(wait, ctx.signal);
      if (ctx.signal.aborted) {
        span?.end('cancelled');
        return stopped(ctx.abortStop());
      }
      // Each try is reserved under the limits again: one the limits cannot hold stops the task.
      const again = reserveModelCall(ctx.budget, agent, turn.use, { messages, tools }, true);
      if (!again.ok) {
        span?.end('limit_exceeded');
        return stopped({ status: 'limit', limit: again.limit, message: again.message });
      }
      reservation = again.reservation;
      startedAt = new Date(ctx.clock.now());
      started = performance.now();
    }
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
    costUsd: costOf(agent.price, usage.inputTokens, usage.outputTokens, reply.usage),
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
