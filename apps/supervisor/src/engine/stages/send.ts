import type { Context } from '@opentelemetry/api';
import { traceparentOf } from '../../telemetry/spans.js';

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
