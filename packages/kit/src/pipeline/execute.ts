import type { Context, Span } from '@opentelemetry/api';
import type { CallContext } from '../callContext.js';
import type { AnyTool, Reconciled } from '../defineTool.js';
import { fail, KeelError, ok, toToolError, type Outcome } from '../errors.js';
import type { Logger } from '../logger.js';
import { otelApi, withContext } from '../telemetry.js';

/** Run: the handler under the call's span context; whatever it throws becomes a structured error. */
export async function executeHandler(
  tool: AnyTool,
  input: Record<string, unknown>,
  ctx: CallContext,
  trace: { span: Span | undefined; context: Context | undefined },
  logger: Logger,
  /** Runs the tool another way (a plan, applied); the handler by default. */
  run?: () => Promise<Outcome<unknown>>,
): Promise<Outcome<unknown>> {
  const work = run ?? (() => tool.spec.handler!(input, ctx));
  try {
    // With tracing off and no caller trace there is nothing to propagate, and entering the context
    // API costs more than the rest of the pipeline.
    return await (trace.span !== undefined && otelApi(true)!.isSpanContextValid(trace.span.spanContext())
      ? withContext(trace.context!, work)
      : work());
  } catch (error) {
    if (!(error instanceof KeelError)) logger.error('tool handler threw', { tool: tool.spec.name, error });
    return { ok: false, error: toToolError(error) };
  } finally {
    if (ctx.pendingProgress !== undefined) await Promise.allSettled(ctx.pendingProgress);
  }
}

/**
 * Recovery of a claim whose process died mid-call: the tool's reconcile decides whether the effect
 * happened; without one, only a tool declared idempotent is run again.
 */
export async function recoverInterrupted(
  tool: AnyTool,
  input: Record<string, unknown>,
  ctx: CallContext,
  execute: () => Promise<Outcome<unknown>>,
): Promise<Outcome<unknown>> {
  const spec = tool.spec;
  if (spec.reconcile === undefined) {
    if (spec.idempotent === true) return await execute();
    return fail(
      'CONFLICT',
      `an earlier ${spec.name} call with this idempotency key was interrupted and its outcome cannot be determined`,
      {
        hint: 'Inspect the current state, then retry with a new idempotency key if the change is still needed.',
      },
    );
  }
  let reconciled: Reconciled<unknown>;
  try {
    reconciled = await spec.reconcile(input, ctx);
  } catch (error) {
    return { ok: false, error: toToolError(error) };
  }
  switch (reconciled.status) {
    case 'done':
      return ok(reconciled.value);
    case 'failed':
      return { ok: false, error: reconciled.error };
    case 'not_done':
      return await execute();
    default:
      throw new KeelError('INTERNAL', `unexpected reconcile status ${JSON.stringify(reconciled)}`);
  }
}
