import { createRequire } from 'node:module';
import type * as OtelApi from '@opentelemetry/api';
import type { Context, Span, Tracer } from '@opentelemetry/api';

const require = createRequire(import.meta.url);
// Where every copy of @opentelemetry/api 1.x registers its global tracer provider, context manager
// and propagator; copies share it, which is how a host's registration reaches a library's copy.
const otelGlobal = Symbol.for('opentelemetry.js.api.1');
let loaded: typeof OtelApi | undefined;

/**
 * The OpenTelemetry API, loaded only once something uses OpenTelemetry: a tracer was passed, or a
 * host registered a provider or context manager. Loading it costs about 15 ms of start-up, on the
 * client's critical path for a stdio server, and without a registration it would only make no-op
 * spans.
 */
export function otelApi(force = false): typeof OtelApi | undefined {
  // Loaded as CommonJS so it can happen synchronously, mid-call; the global registry is shared
  // with any ESM copy the host uses.
  if (loaded === undefined && (force || (globalThis as Record<symbol, unknown>)[otelGlobal] !== undefined)) {
    loaded = require('@opentelemetry/api') as typeof OtelApi;
  }
  return loaded;
}

/** Attribute names used on tool spans: OTel GenAI and MCP semantic conventions, plus `keel.*`. */
export const SpanAttributes = {
  mcpMethodName: 'mcp.method.name',
  mcpSessionId: 'mcp.session.id',
  mcpProtocolVersion: 'mcp.protocol.version',
  jsonrpcRequestId: 'jsonrpc.request.id',
  genAiOperationName: 'gen_ai.operation.name',
  genAiToolName: 'gen_ai.tool.name',
  genAiToolCallId: 'gen_ai.tool.call.id',
  errorType: 'error.type',
  serverName: 'keel.server.name',
  idempotencyOutcome: 'keel.idempotency.outcome',
  resultBytes: 'keel.result.bytes',
  resultTruncated: 'keel.result.truncated',
  toolEffect: 'keel.tool.effect',
  /** The call asked only for its preview (`_meta["keel/preview"]`). */
  preview: 'keel.preview',
} as const;

const traceparentPattern = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * The caller's trace context from request `_meta` (`traceparent`, `tracestate` as W3C Trace Context
 * carries them), so a tool span joins the trace of the agent step that made the call. A malformed
 * header is ignored, as the W3C spec asks, and the span starts a new trace.
 */
export function contextFromMeta(meta: Record<string, unknown> | undefined): Context {
  const { ROOT_CONTEXT, trace, TraceFlags } = otelApi(true)!;
  const header = meta?.['traceparent'];
  if (typeof header !== 'string') return ROOT_CONTEXT;
  const match = traceparentPattern.exec(header.trim().toLowerCase());
  if (!match || match[1] === 'ff' || /^0+$/.test(match[2]!) || /^0+$/.test(match[3]!)) return ROOT_CONTEXT;
  const tracestate = meta?.['tracestate'];
  return trace.setSpanContext(ROOT_CONTEXT, {
    traceId: match[2]!,
    spanId: match[3]!,
    traceFlags: Number.parseInt(match[4]!, 16) & TraceFlags.SAMPLED,
    isRemote: true,
    ...(typeof tracestate === 'string' ? { traceState: parseTraceState(tracestate) } : {}),
  });
}

function parseTraceState(header: string) {
  const entries = new Map(
    header
      .split(',')
      .map((member) => member.trim().split('='))
      .filter((pair): pair is [string, string] => pair.length === 2 && pair[0] !== '' && pair[1] !== '')
      .slice(0, 32),
  );
  const state = {
    get: (key: string) => entries.get(key),
    set: (key: string, value: string) => {
      const next = new Map(entries);
      next.set(key, value);
      return state;
    },
    unset: () => state,
    serialize: () => [...entries].map(([k, v]) => `${k}=${v}`).join(','),
  };
  return state;
}

export interface ToolSpanStart {
  tracer: Tracer;
  server: string;
  tool: string;
  effect: string;
  requestId: string | number;
  sessionId?: string | undefined;
  meta?: Record<string, unknown> | undefined;
}

/** Starts the span of one tool call: `tools/call {tool}`, kind SERVER, parented by the caller's trace. */
export function startToolSpan(start: ToolSpanStart): { span: Span; context: Context } {
  const { SpanKind, trace } = otelApi(true)!;
  const parent = contextFromMeta(start.meta);
  const span = start.tracer.startSpan(`tools/call ${start.tool}`, { kind: SpanKind.SERVER }, parent);
  // Attributes only for a span that records: with tracing off this is the whole per-call cost.
  if (span.isRecording()) {
    span.setAttributes({
      [SpanAttributes.mcpMethodName]: 'tools/call',
      [SpanAttributes.genAiOperationName]: 'execute_tool',
      [SpanAttributes.genAiToolName]: start.tool,
      [SpanAttributes.genAiToolCallId]: String(start.requestId),
      [SpanAttributes.jsonrpcRequestId]: String(start.requestId),
      [SpanAttributes.serverName]: start.server,
      [SpanAttributes.toolEffect]: start.effect,
      ...(start.sessionId === undefined ? {} : { [SpanAttributes.mcpSessionId]: start.sessionId }),
    });
  }
  return { span, context: trace.setSpan(parent, span) };
}

/** Ends a tool span; an error code becomes `error.type` and an ERROR status. */
export function endToolSpan(
  span: Span,
  outcome: { errorCode?: string | undefined; message?: string | undefined },
): void {
  if (outcome.errorCode !== undefined) {
    span.setAttribute(SpanAttributes.errorType, outcome.errorCode);
    span.setStatus({
      code: otelApi(true)!.SpanStatusCode.ERROR,
      ...(outcome.message === undefined ? {} : { message: outcome.message }),
    });
  }
  span.end();
}

/** Runs `fn` with `ctx` active, so spans a handler starts nest under the tool span. */
export function withContext<TResult>(ctx: Context, fn: () => TResult): TResult {
  return otelApi(true)!.context.with(ctx, fn);
}
