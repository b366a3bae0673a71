import { canonicalJson, fail, ok, sha256Hex, type Outcome, type ToolContext } from '@keel/kit';
import type { ApprovalPayload } from '@keel/kit/approval';
import type { EnvironmentConfig } from '../config/config.js';
import type { HealthResult } from '../health/healthCheck.js';
import type { PreparedRelease } from '../target/target.js';
import { checkApproval, checkUnspent, reused, spendNonceOp } from './approval.js';
import { checkLinks, resolveBuild, scanBuild } from './build.js';
import { environmentOf, inProgress, type DeployContext } from './context.js';
import { EnvironmentLock } from './lock.js';
import { runPhases } from './phases.js';
import { reconcile } from './reconcile.js';
import { prune } from './releaseSet.js';
import { keys, type PlanRecord, type ReleaseRecord } from './records.js';
import { readEnvironment, type ApplyAttempt } from './state.js';

export interface ApplyResult {
  releaseId: string;
  environment: string;
  planId: string;
  status: 'live' | 'rolled_back';
  replayed: boolean;
  previousRelease: string | null;
  current: string | null;
  health: HealthResult | null;
  files: PreparedRelease;
  approvedBy: string | null;
  notes: string[];
}

/**
 * Applies a stored plan: approval (when required), the lock, reconciliation of an interrupted run,
 * then replay, staleness, and the phases (copy, switch, health, record). A failed health check
 * switches back.
 */
export async function applyPlan(
  deps: DeployContext,
  planId: string,
  ctx: ToolContext,
): Promise<Outcome<ApplyResult>> {
  const stored = await deps.store.get<PlanRecord>(keys.plan(planId));
  if (stored === undefined) {
    return fail('NOT_FOUND', `plan '${planId}' does not exist (or is older than 7 days)`, {
      hint: 'Call plan_deploy for the environment and apply the planId it returns.',
    });
  }
  const plan = stored.value;
  const found = environmentOf(deps, plan.environment);
  if (!found.ok) return found;
  const env = found.value;

  let approval: ApprovalPayload | undefined;
  if (env.policy.requiresApproval) {
    const checked = checkApproval(deps, plan, ctx);
    if (!checked.ok) return checked;
    approval = checked.value;
    ctx.setAuditActor(approval.approver);
  }

  const acquired = await EnvironmentLock.acquire(deps.store, env.name, {
    owner: ctx.owner,
    startTime: deps.startTime,
    operation: 'apply',
    planId,
    leaseMs: env.lock.leaseSeconds * 1000,
    now: deps.now(),
  });
  if (!acquired.ok) return inProgress(env.name, acquired.holder);
  const lock = acquired.lock;
  try {
    const { notes, finishedNonce } = await reconcile(deps, env, lock, ctx);
    // A token whose own interrupted deploy this call just finished is not reused: the retry gets that deploy.
    if (approval !== undefined && approval.nonce !== finishedNonce) {
      const unspent = await checkUnspent(deps, approval, plan);
      if (!unspent.ok) return unspent;
    }
    return await applyLocked(deps, env, plan, approval, lock, notes, ctx);
  } finally {
    await lock.release();
  }
}

async function applyLocked(
  deps: DeployContext,
  env: EnvironmentConfig,
  plan: PlanRecord,
  approval: ApprovalPayload | undefined,
  lock: EnvironmentLock,
  notes: string[],
  ctx: ToolContext,
): Promise<Outcome<ApplyResult>> {
  const target = deps.target(env.name);
  const { record } = await readEnvironment(deps.store, env.name);
  const current = await target.current(ctx);

  const existing = await deps.store.get<ReleaseRecord>(keys.release(env.name, plan.releaseId));
  if (existing !== undefined) {
    if (existing.value.generation === record.generation) {
      // A run killed after recording its release but before pruning left more than `keep`: finish it.
      await prune(deps, env, ctx);
      return ok(applyResultOf(existing.value, current, true, notes));
    }
    return fail(
      'STALE_PLAN',
      `plan '${plan.planId}' was applied as '${plan.releaseId}', and '${env.name}' has changed since`,
      {
        hint: 'Call plan_deploy again and apply the new plan.',
        details: { planId: plan.planId, releaseId: plan.releaseId, current },
      },
    );
  }
  if (record.generation !== plan.generation || current !== plan.baseRelease) {
    return fail(
      'STALE_PLAN',
      `plan '${plan.planId}' was made before the latest release or rollback of '${env.name}'`,
      {
        hint: 'Call plan_deploy again and apply the new plan.',
        details: { planId: plan.planId, plannedAgainst: plan.baseRelease, current },
      },
    );
  }
  if (plan.configHash !== sha256Hex(canonicalJson(env))) {
    return fail(
      'STALE_PLAN',
      `the deploy config of '${env.name}' changed since plan '${plan.planId}' was made`,
      {
        hint: 'Call plan_deploy again and apply the new plan.',
      },
    );
  }
  await lock.phase('hashing');
  const build = await resolveBuild(env, ctx);
  if (!build.ok) return build;
  const manifest = await scanBuild(build.value, deps.config.maxFiles, ctx.signal);
  if (manifest?.hash !== plan.buildHash) {
    return fail(
      'STALE_PLAN',
      `the build '${env.buildAsWritten}' changed since plan '${plan.planId}' was made`,
      {
        hint: 'Call plan_deploy again to see what would change now, and apply that plan.',
        details: { planId: plan.planId, plannedBuildHash: plan.buildHash, buildHash: manifest?.hash ?? null },
      },
    );
  }
  // The plan was checked, but a plan record is only data: the build's links are held to the policy here too.
  const links = checkLinks(env, manifest);
  if (!links.ok) return links;

  const attempt: ApplyAttempt = {
    operation: 'apply',
    planId: plan.planId,
    planHash: plan.planHash,
    releaseId: plan.releaseId,
    baseRelease: plan.baseRelease,
    generation: record.generation,
    phase: 'copying',
    startedAt: deps.now(),
    approvedBy: approval?.approver ?? null,
    nonce: approval?.nonce ?? null,
  };
  // The attempt and the approval it spends are one commit: a refusal before it spends nothing, and a
  // crash after it leaves the attempt that reconcile finishes or drops (giving the approval back).
  const recorded = await deps.store.commit([
    { kind: 'put', key: keys.attempt(env.name), value: attempt, ifVersion: 0 },
    ...(approval === undefined ? [] : [spendNonceOp(deps, approval, plan)]),
  ]);
  if (!recorded.ok) {
    if (approval !== undefined && recorded.key === keys.nonce(approval.nonce)) return reused(deps, plan);
    throw new Error(`another deploy of '${env.name}' is recorded as under way`);
  }
  deps.crash('deploy.after-token-spent', ctx);
  const finished = await runPhases(
    { deps, env, ctx, lock, attempt, live: plan.baseRelease, source: { dir: build.value, manifest } },
    'copying',
  );
  if (!finished.ok) return finished;
  const { release, notes: more } = finished.value;
  return ok(applyResultOf(release, await target.current(ctx), false, [...notes, ...more]));
}

function applyResultOf(
  release: ReleaseRecord,
  current: string | null,
  replayed: boolean,
  notes: string[],
): ApplyResult {
  return {
    releaseId: release.releaseId,
    environment: release.environment,
    planId: release.planId,
    status: release.status,
    replayed,
    previousRelease: release.baseRelease,
    current,
    health: release.health,
    files: release.files,
    approvedBy: release.approvedBy,
    notes,
  };
}
