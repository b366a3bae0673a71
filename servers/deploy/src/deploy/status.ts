import { ok, type Outcome, type ToolContext } from '@keel/kit';
import { runHealthCheck, type HealthResult } from '../health/healthCheck.js';
import { environmentOf, type DeployContext } from './context.js';
import { holderIsGone, type LockHolder } from './lock.js';
import { keys, type AttemptRecord, type EnvironmentRecord } from './records.js';
import { releaseInfos, type ReleaseInfo } from './releaseSet.js';
import { readEnvironment } from './state.js';

export interface EnvironmentStatus {
  environment: string;
  current: string | null;
  generation: number;
  inProgress: (Pick<LockHolder, 'operation' | 'planId' | 'phase' | 'progress'> & { since: string }) | null;
  interrupted: {
    operation: 'apply' | 'rollback';
    planId: string | null;
    releaseId: string | null;
    phase: string;
  } | null;
  last: (Omit<NonNullable<EnvironmentRecord['last']>, 'at'> & { at: string }) | null;
}

/** What is live, what is under way or was interrupted, and the last result. */
export async function environmentStatus(
  deps: DeployContext,
  name: string,
  ctx: ToolContext,
): Promise<Outcome<EnvironmentStatus>> {
  const found = environmentOf(deps, name);
  if (!found.ok) return found;
  const current = await deps.target(name).current(ctx);
  const { record } = await readEnvironment(deps.store, name);
  const lock = (await deps.store.get<LockHolder>(keys.lock(name)))?.value;
  const live = lock !== undefined && !holderIsGone(lock) ? lock : undefined;
  const attempt = (await deps.store.get<AttemptRecord>(keys.attempt(name)))?.value;
  return ok({
    environment: name,
    current,
    generation: record.generation,
    inProgress:
      live === undefined
        ? null
        : {
            operation: live.operation,
            planId: live.planId,
            phase: live.phase,
            ...(live.progress === undefined ? {} : { progress: live.progress }),
            since: new Date(live.acquiredAt).toISOString(),
          },
    interrupted:
      attempt === undefined || live !== undefined
        ? null
        : {
            operation: attempt.operation,
            planId: attempt.operation === 'apply' ? attempt.planId : null,
            releaseId: attempt.operation === 'apply' ? attempt.releaseId : attempt.to,
            phase: attempt.phase,
          },
    last: record.last === null ? null : { ...record.last, at: new Date(record.last.at).toISOString() },
  });
}

export async function checkHealth(
  deps: DeployContext,
  name: string,
  ctx: ToolContext,
): Promise<Outcome<{ current: string | null; health: HealthResult | null }>> {
  const found = environmentOf(deps, name);
  if (!found.ok) return found;
  const env = found.value;
  const current = await deps.target(name).current(ctx);
  if (env.policy.health === undefined) return ok({ current, health: null });
  return ok({
    current,
    health: await runHealthCheck(env.policy.health, { ctx, cwd: deps.config.projectRoot }),
  });
}

export async function listReleases(
  deps: DeployContext,
  name: string,
  ctx: ToolContext,
): Promise<Outcome<{ current: string | null; releases: ReleaseInfo[] }>> {
  const found = environmentOf(deps, name);
  if (!found.ok) return found;
  const current = await deps.target(name).current(ctx);
  return ok({ current, releases: await releaseInfos(deps, name, current) });
}
