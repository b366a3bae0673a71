import { fail, ok, type Outcome, type ToolContext } from '@keel/kit';
import { runHealthCheck, type HealthResult } from '../health/healthCheck.js';
import { environmentOf, inProgress, type DeployContext } from './context.js';
import { EnvironmentLock } from './lock.js';
import { reconcile } from './reconcile.js';
import { keys } from './records.js';
import { releaseInfos, rollbackDestination } from './releaseSet.js';
import { putAttempt, readEnvironment, recordRollback } from './state.js';
import { activate } from './switching.js';

export interface RollbackResult {
  environment: string;
  from: string | null;
  to: string;
  changed: boolean;
  health: HealthResult | null;
  notes: string[];
}

/** Switches back to the previous live release, or to a named one; a no-op when it is already live. */
export async function rollbackEnvironment(
  deps: DeployContext,
  name: string,
  to: string | undefined,
  ctx: ToolContext,
): Promise<Outcome<RollbackResult>> {
  const found = environmentOf(deps, name);
  if (!found.ok) return found;
  const env = found.value;
  const acquired = await EnvironmentLock.acquire(deps.store, name, {
    owner: ctx.owner,
    startTime: deps.startTime,
    operation: 'rollback',
    planId: null,
    leaseMs: env.lock.leaseSeconds * 1000,
    now: deps.now(),
  });
  if (!acquired.ok) return inProgress(name, acquired.holder);
  const lock = acquired.lock;
  try {
    const { notes } = await reconcile(deps, env, lock, ctx);
    const current = await deps.target(name).current(ctx);
    const releases = await releaseInfos(deps, name, current);
    const onTarget = `Releases on the target: ${releases.map((release) => release.releaseId).join(', ') || 'none'}.`;
    let destination = to;
    if (destination === undefined) {
      destination = rollbackDestination(releases)?.releaseId;
      if (destination === undefined) {
        return fail('NOT_FOUND', `'${name}' has no earlier live release to roll back to`, { hint: onTarget });
      }
    } else if (!releases.some((release) => release.releaseId === destination)) {
      return fail('NOT_FOUND', `release '${destination}' is not on the target of '${name}'`, {
        hint: onTarget,
      });
    }
    if (destination === current) {
      return ok({ environment: name, from: current, to: destination, changed: false, health: null, notes });
    }
    const { record } = await readEnvironment(deps.store, name);
    await putAttempt(deps.store, name, {
      operation: 'rollback',
      from: current,
      to: destination,
      generation: record.generation,
      phase: 'switching',
      startedAt: deps.now(),
    });
    await lock.phase('switching');
    const activated = await activate(deps, env, destination, { fresh: false, previous: current }, ctx);
    if (!activated.ok) {
      await deps.store.delete(keys.attempt(name));
      return activated;
    }
    deps.crash('rollback.after-switch', ctx);
    await recordRollback(deps.store, name, destination, deps.now());
    const health =
      env.policy.health === undefined
        ? null
        : await runHealthCheck(env.policy.health, { ctx, cwd: deps.config.projectRoot });
    return ok({ environment: name, from: current, to: destination, changed: true, health, notes });
  } finally {
    await lock.release();
  }
}
