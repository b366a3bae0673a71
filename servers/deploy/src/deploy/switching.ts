import { fail, KeelError, ok, type Outcome, type ToolContext } from '@keel/kit';
import type { EnvironmentConfig } from '../config/config.js';
import { TargetCommandError } from '../target/command.js';
import { buildPathOr } from './build.js';
import { unknownState, type DeployContext } from './context.js';

/**
 * Makes a release live through the target. A command that failed is checked against the target's
 * own answer when it has one: `{ ok: false }` means nothing changed; an outcome nobody can tell
 * throws UNKNOWN_STATE and leaves the attempt for a human.
 */
export async function activate(
  deps: DeployContext,
  env: EnvironmentConfig,
  releaseId: string,
  options: { fresh: boolean; previous: string | null },
  ctx: ToolContext,
): Promise<Outcome<void>> {
  const target = deps.target(env.name);
  try {
    await target.activate(releaseId, { ...options, build: await buildPathOr(env, ctx), ctx });
    return ok(undefined);
  } catch (error) {
    if (!(error instanceof TargetCommandError)) throw error;
    if (target.observesCurrent) {
      const live = await target.current(ctx);
      if (live === releaseId) return ok(undefined);
      if (live !== options.previous)
        throw unknownState(env.name, `${error.message}, and now '${live ?? 'nothing'}' is live`);
    } else if (error.unknownOutcome) {
      throw unknownState(
        env.name,
        `${error.message}; without a current command nobody can tell what is live`,
      );
    }
    return fail('UNAVAILABLE', `${error.message}; nothing went live`, {
      retryable: false,
      hint: 'Fix what the command reports (details.output), then apply the plan again.',
      details: { output: error.output },
    });
  }
}

/** Goes back to `to` (or to nothing) after a failed health check; false when the target cannot. */
export async function restore(
  deps: DeployContext,
  env: EnvironmentConfig,
  to: string | null,
  from: string,
  ctx: ToolContext,
): Promise<boolean> {
  if (to === null) return await deps.target(env.name).deactivate(ctx);
  const restored = await activate(deps, env, to, { fresh: false, previous: from }, ctx);
  if (!restored.ok) throw new KeelError(restored.error.code, restored.error.message, restored.error);
  return true;
}
