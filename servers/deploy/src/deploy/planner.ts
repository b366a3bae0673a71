import { canonicalJson, ok, sha256Hex, type Outcome, type ToolContext } from '@keel/kit';
import { APPROVAL_META_KEY } from '@keel/kit/approval';
import { diffManifests, type ManifestDiff } from '../build/manifest.js';
import { describeHealth } from '../health/healthCheck.js';
import { approveCommand } from './approval.js';
import { buildMissing, checkLinks, resolveBuild, scanBuild } from './build.js';
import { environmentOf, type DeployContext } from './context.js';
import { keys, type AttemptRecord, type PlanRecord } from './records.js';
import { readEnvironment } from './state.js';

const planTtlMs = 7 * 24 * 3600_000;

export interface PlanResult {
  plan: PlanRecord;
  diff: ManifestDiff;
  total: { files: number; bytes: number };
  checks: string[];
  warnings: string[];
  requiresApproval: boolean;
  approveCommand: string | null;
}

/** What a deploy of the current build would change; stores the plan and touches nothing else. */
export async function planDeploy(
  deps: DeployContext,
  name: string,
  ctx: ToolContext,
): Promise<Outcome<PlanResult>> {
  const found = environmentOf(deps, name);
  if (!found.ok) return found;
  const env = found.value;
  const target = deps.target(name);
  const build = await resolveBuild(env, ctx);
  if (!build.ok) return build;
  const manifest = await scanBuild(build.value, deps.config.maxFiles, ctx.signal);
  if (manifest === undefined) return buildMissing(env);
  const links = checkLinks(env, manifest);
  if (!links.ok) return links;
  const baseRelease = await target.current(ctx);
  const { record } = await readEnvironment(deps.store, name);
  const base = baseRelease === null ? null : await target.manifest(baseRelease);
  const configHash = sha256Hex(canonicalJson(env));
  const planHash = sha256Hex(
    canonicalJson({
      v: 1,
      environment: name,
      buildHash: manifest.hash,
      baseRelease,
      generation: record.generation,
      configHash,
    }),
  );
  const diff = diffManifests(base, manifest);
  const plan: PlanRecord = {
    planId: `plan-${planHash.slice(0, 20)}`,
    planHash,
    environment: name,
    releaseId: `${name}-${planHash.slice(0, 12)}`,
    buildHash: manifest.hash,
    configHash,
    baseRelease,
    generation: record.generation,
    createdAt: deps.now(),
    summary: {
      added: diff.added.count,
      changed: diff.changed.count,
      removed: diff.removed.count,
      unchanged: diff.unchanged.count,
      bytes: diff.added.bytes + diff.changed.bytes,
    },
    // What the build itself warns about travels with the plan to whoever approves it.
    ...(links.value.length === 0 ? {} : { warnings: links.value }),
  };
  await deps.store.put(keys.plan(plan.planId), plan, { ttlMs: planTtlMs });

  const checks = [
    'the build is re-hashed at apply and must match this plan file for file',
    'the environment must not have had a release or rollback since this plan',
    `one deploy at a time per environment (lock lease ${env.lock.leaseSeconds} s)`,
  ];
  if (env.policy.requiresApproval)
    checks.push(
      `a person's approval of this plan hash: asked at the client when it can show a form, else a signed token in _meta["${APPROVAL_META_KEY}"]`,
    );
  checks.push(
    env.policy.health === undefined
      ? 'no health check is configured: the release goes live without one'
      : `health: ${describeHealth(env.policy.health)}; on failure the previous release is restored`,
  );
  const warnings = [...links.value];
  const attempt = await deps.store.get<AttemptRecord>(keys.attempt(name));
  if (attempt !== undefined) {
    warnings.push(
      `an interrupted ${attempt.value.operation} is pending reconciliation; the next apply or rollback finishes or cleans it up, which makes this plan stale`,
    );
  }
  if (base === null && baseRelease !== null) {
    warnings.push(
      `the live release '${baseRelease}' has no manifest: every file counts as added and none is hard-linked`,
    );
  }
  return ok({
    plan,
    diff,
    total: { files: manifest.files, bytes: manifest.bytes },
    checks,
    warnings,
    requiresApproval: env.policy.requiresApproval,
    approveCommand: env.policy.requiresApproval ? approveCommand(deps, plan) : null,
  });
}
