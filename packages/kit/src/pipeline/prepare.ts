import { CallContext, type CallContextInit } from '../callContext.js';
import { KeelError, toToolError, type Outcome, type ToolError } from '../errors.js';
import type { ResolvedPath } from '../jail.js';
import type { PrepareStep } from '../prepare.js';

/** A call before its prepare step: the context a handler will see, with `prepared` still to fill. */
export interface PreparingCall extends Omit<CallContextInit, 'prepared'> {
  prepared: unknown;
}

const noPaths: ReadonlyMap<string, ResolvedPath> = new Map<string, ResolvedPath>();

/**
 * Prepare: the server's step for every tool (policy, and the value the handler gets as
 * `ctx.prepared`). Answers the refusal, or undefined once `call.prepared` holds the step's value.
 */
export async function prepareCall(
  prepare: PrepareStep | undefined,
  readsPrepared: boolean,
  call: PreparingCall,
): Promise<ToolError | undefined> {
  const tool = call.spec.name;
  if (prepare === undefined) {
    return readsPrepared ? nothingPrepared(tool, 'the server has no prepare step') : undefined;
  }
  const ctx = new CallContext(call as CallContextInit);
  let outcome: Outcome<unknown>;
  try {
    outcome = await prepare({
      tool,
      effect: call.spec.effect,
      input: call.input,
      paths: call.resolved ?? noPaths,
      jail: call.jail,
      meta: call.meta,
      readsPrepared,
      signal: call.abort.signal,
      get logger() {
        return ctx.logger;
      },
      run: (options) => ctx.run(options),
    });
  } catch (error) {
    // A cancel or timeout during the step (its child was killed) answers like one during the handler.
    if (!(error instanceof KeelError)) call.logger.error('prepare step threw', { tool, error });
    return toToolError(error);
  }
  if (!outcome.ok) return outcome.error;
  if (readsPrepared && outcome.value === undefined)
    return nothingPrepared(tool, 'the prepare step returned nothing for it');
  call.prepared = outcome.value;
  return undefined;
}

function nothingPrepared(tool: string, why: string): ToolError {
  return toToolError(
    new KeelError('INTERNAL', `${tool} reads a prepared value, but ${why}`, {
      hint: 'A server defect: build the server with toolSet({ tools, prepare }) so its step serves every tool.',
    }),
  );
}
