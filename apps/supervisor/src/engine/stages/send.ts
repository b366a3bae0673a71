import { sha256Hex } from '@keel/kit/core';
import type { Context, Tracer } from '@opentelemetry/api';
import type { Clock } from '../../clock.js';
import type { ConnectedServer, ToolResult } from '../../mcp/servers.js';
import { GenAi, SpanKind, startSpan, traceparentOf } from '../../telemetry/spans.js';
import type { ToolSlot } from './call.js';

/** What bounds every call out of a task: its signal (a kill, the deadline) and the time left. */
export interface CallBounds {
  signal: AbortSignal;
  msLeft(): number;
}

/** The options of an MCP call under the task's bounds, with `meta` in its `_meta`. */
export const callOptions = (bounds: CallBounds, meta: Record<string, unknown>) => ({
  signal: bounds.signal,
  timeoutMs: Math.max(1, bounds.msLeft()),
  meta,
});

/** The W3C trace context of `ctx` for `_meta`, so the server's span joins the task's trace. */
export function traceMeta(ctx: Context): Record<string, string> {
  const traceparent = traceparentOf(ctx);
  return traceparent === undefined ? {} : { traceparent };
}

/** One key per call slot of a task: a resumed task's repeated call gets the server's stored result. */
export const idempotencyKeyOf = (taskId: string, step: number, callIndex: number) =>
  `keel-${sha256Hex(`${taskId}\n${step}\n${callIndex}`).slice(0, 48)}`;

export interface SendContext {
  taskId: string;
  tracer: Tracer | undefined;
  bounds: CallBounds;
  /** Stamps the call's start in its record. */
  clock: Clock;
}

/** A call that went out: the server's result, or what it threw (cancelled when the task's signal fired). */
export type Sent = { idempotencyKey: string; startedAt: string; latencyMs: number } & (
  { ok: true; result: ToolResult } | { ok: false; message: string; cancelled: boolean }
);

/**
 * The MCP call itself, in its `execute_tool` span: the slot's idempotency key, the trace context
 * and the gate's approval token (which the model never sees) in `_meta`.
 */
export async function send(
  ctx: SendContext,
  server: ConnectedServer,
  slot: ToolSlot,
  parent: Context,
  gateMeta: Record<string, unknown>,
): Promise<Sent> {
  const { call, tool, args, classification } = slot;
  const idempotencyKey = idempotencyKeyOf(ctx.taskId, slot.step, slot.callIndex);
  const span =
    ctx.tracer === undefined
      ? undefined
      : startSpan(
          ctx.tracer,
          `execute_tool ${tool.name}`,
          parent,
          {
            [GenAi.operation]: 'execute_tool',
            [GenAi.toolName]: tool.name,
            [GenAi.toolCallId]: call.id,
            [GenAi.toolType]: 'extension',
            [GenAi.mcpMethod]: 'tools/call',
            'keel.server': tool.server,
            'keel.irreversible': classification.irreversible,
          },
          SpanKind.CLIENT,
        );
  const startedAt = new Date(ctx.clock.now()).toISOString();
  const started = performance.now();
  let result: ToolResult;
  try {
    result = await server.call(
      tool.name,
      args,
      callOptions(ctx.bounds, {
        'keel/idempotency-key': idempotencyKey,
        ...traceMeta(span?.ctx ?? parent),
        ...gateMeta,
      }),
    );
  } catch (error) {
    const latencyMs = performance.now() - started;
    const cancelled = ctx.bounds.signal.aborted;
    span?.end(cancelled ? 'cancelled' : 'mcp_error');
    return { ok: false, idempotencyKey, startedAt, latencyMs, message: (error as Error).message, cancelled };
  }
  const latencyMs = performance.now() - started;
  span?.end(result.isError ? (result.error?.code ?? 'tool_error') : undefined);
  return { ok: true, idempotencyKey, startedAt, latencyMs, result };
}
