import type { Context, Span, Tracer } from '@opentelemetry/api';
import type { Outcome } from '../errors.js';
import { endToolSpan, otelApi, SpanAttributes, startToolSpan } from '../telemetry.js';
import type { ToolEffect } from '../defineTool.js';

export interface CallTrace {
  span: Span | undefined;
  context: Context | undefined;
}

const untraced: CallTrace = { span: undefined, context: undefined };

/**
 * Span: a `tools/call {tool}` span parented by `_meta.traceparent`. With no tracer given and no
 * OpenTelemetry registered there is no span at all, rather than a no-op one.
 */
export function startCallSpan(
  tracer: Tracer | undefined,
  call: {
    server: string;
    tool: string;
    effect: ToolEffect;
    requestId: string | number | undefined;
    sessionId: string | undefined;
    meta: Record<string, unknown> | undefined;
  },
): CallTrace {
  const chosen = tracer ?? otelApi()?.trace.getTracer('@keel/kit');
  if (chosen === undefined) return untraced;
  return startToolSpan({
    tracer: chosen,
    server: call.server,
    tool: call.tool,
    effect: call.effect,
    requestId: call.requestId ?? 'local',
    sessionId: call.sessionId,
    meta: call.meta,
  });
}

/** Ends the span with what the call answered: size, idempotency outcome, truncation, error. */
export function endCallSpan(
  span: Span | undefined,
  answer: { bytes: number | (() => number); outcome: Outcome<unknown> | undefined; idempotency: string },
): void {
  if (span === undefined) return;
  const outcome = answer.outcome;
  if (span.isRecording()) {
    span.setAttribute(
      SpanAttributes.resultBytes,
      typeof answer.bytes === 'number' ? answer.bytes : answer.bytes(),
    );
    span.setAttribute(SpanAttributes.idempotencyOutcome, answer.idempotency);
    span.setAttribute(
      SpanAttributes.resultTruncated,
      outcome?.ok === true &&
        typeof outcome.value === 'object' &&
        outcome.value !== null &&
        'truncated' in outcome.value,
    );
  }
  endToolSpan(span, {
    errorCode: outcome === undefined || outcome.ok ? undefined : outcome.error.code,
    message: outcome === undefined || outcome.ok ? undefined : outcome.error.message,
  });
}
