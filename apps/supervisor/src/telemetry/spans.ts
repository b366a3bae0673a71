import {
  context,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
  type Tracer,
} from '@opentelemetry/api';

/** GenAI and MCP semantic-convention attribute names the supervisor sets. */
export const GenAi = {
  operation: 'gen_ai.operation.name',
  provider: 'gen_ai.provider.name',
  requestModel: 'gen_ai.request.model',
  responseModel: 'gen_ai.response.model',
  maxTokens: 'gen_ai.request.max_tokens',
  inputTokens: 'gen_ai.usage.input_tokens',
  outputTokens: 'gen_ai.usage.output_tokens',
  finishReasons: 'gen_ai.response.finish_reasons',
  agentName: 'gen_ai.agent.name',
  agentId: 'gen_ai.agent.id',
  conversationId: 'gen_ai.conversation.id',
  toolName: 'gen_ai.tool.name',
  toolCallId: 'gen_ai.tool.call.id',
  toolType: 'gen_ai.tool.type',
  mcpMethod: 'mcp.method.name',
  errorType: 'error.type',
} as const;

export interface SpanHandle {
  span: Span;
  ctx: Context;
  end(error?: string): void;
}

/** Starts a child span of `parent` and returns it with its context. */
export function startSpan(
  tracer: Tracer,
  name: string,
  parent: Context,
  attributes: Record<string, string | number | boolean | string[]>,
  kind: SpanKind = SpanKind.INTERNAL,
): SpanHandle {
  const span = tracer.startSpan(name, { kind, attributes }, parent);
  return {
    span,
    ctx: trace.setSpan(parent, span),
    end(error) {
      if (error !== undefined) {
        span.setAttribute(GenAi.errorType, error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: error });
      }
      span.end();
    },
  };
}

/** The W3C `traceparent` of the span in `ctx`, or undefined when tracing is off. */
export function traceparentOf(ctx: Context): string | undefined {
  const spanContext = trace.getSpanContext(ctx);
  if (spanContext === undefined || !trace.isSpanContextValid(spanContext)) return undefined;
  return `00-${spanContext.traceId}-${spanContext.spanId}-0${(spanContext.traceFlags & 1).toString(16)}`;
}

export const rootContext = (): Context => context.active();
export { SpanKind };
