import { createHash, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import {
  canonicalJson,
  fail,
  KeelError,
  ok,
  sha256Hex,
  type Outcome,
  type StateEntry,
  type StateOp,
  type StateStore,
  type ToolContext,
} from '@keel/kit';
import type { KeyObject } from 'node:crypto';
import { APPROVAL_META_KEY, verifyApproval, type ApprovalPayload } from '@keel/kit/approval';
import * as z from 'zod';
import { diffManifests, scanTree, type ManifestDiff } from '../build/manifest.js';
import type { DeployConfig, EnvironmentConfig } from '../config/config.js';
import { describeHealth, runHealthCheck, type HealthResult } from '../health/healthCheck.js';
import { CommandTarget, TargetCommandError } from '../target/command.js';
import { DirectoryTarget } from '../target/directory.js';
import { BuildChangedError, type DeployTarget, type PreparedRelease } from '../target/target.js';
import { EnvironmentLock, holderIsDead, type LockHolder } from './lock.js';
import {
  emptyEnvironment,
  keys,
  recordApplyOps,
  recordRollbackOps,
  type AttemptRecord,
  type EnvironmentRecord,
  type PlanRecord,
  type ReleaseRecord,
} from './records.js';

const planTtlMs = 7 * 24 * 3600_000;
/** How long a person has to answer the approval question at the client. */
const approvalQuestionTtlMs = 10 * 60_000;

export interface DeployerOptions {
  config: DeployConfig;
  store: StateStore;
  /** Public keys whose approval tokens this server accepts. */
  approvalKeys: readonly KeyObject[];
  /** The bin name for the out-of-band approval command in hints. */
  bin?: string;
  now?: () => number;
}

export interface PlanResult {
  plan: PlanRecord;
  diff: ManifestDiff;
  total: { files: number; bytes: number };
  checks: string[];
  warnings: string[];
  requiresApproval: boolean;
  approveCommand: string | null;
}

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

export interface RollbackResult {
  environment: string;
  from: string | null;
  to: string;
  changed: boolean;
  health: HealthResult | null;
  notes: string[];
}

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

export interface ReleaseInfo {
  releaseId: string;
  current: boolean;
  seq: number | null;
  createdAt: string | null;
  planId: string | null;
  status: 'live' | 'rolled_back' | null;
  healthOk: boolean | null;
  approvedBy: string | null;
}

/**
 * Plans, applies and rolls back deploys of the configured environments. All durable bookkeeping
 * (plans, releases, the lock, the in-flight attempt, used approval nonces) lives in the state store;
 * what is live is read from the target itself, so a lost state never misreports it.
 */
export class Deployer {
  readonly config: DeployConfig;
  readonly #store: StateStore;
  readonly #keys: readonly KeyObject[];
  readonly #now: () => number;
  readonly #owner = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  readonly #bin: string;
  readonly #targets = new Map<string, DeployTarget>();

  constructor(options: DeployerOptions) {
    this.config = options.config;
    this.#store = options.store;
    this.#keys = options.approvalKeys;
    this.#now = options.now ?? Date.now;
    this.#bin = options.bin ?? 'keel-deploy';
    for (const env of options.config.environments.values()) {
      this.#targets.set(
        env.name,
        env.target.type === 'directory'
          ? new DirectoryTarget(env.target.path, env.target.pathAsWritten)
          : new CommandTarget({
              config: env.target,
              store: options.store,
              environment: env.name,
              projectRoot: options.config.projectRoot,
            }),
      );
    }
  }

  environment(name: string): Outcome<EnvironmentConfig> {
    const env = this.config.environments.get(name);
    if (env !== undefined) return ok(env);
    return fail('NOT_FOUND', `environment '${name}' is not in the deploy config`, {
      hint: `Configured environments: ${[...this.config.environments.keys()].join(', ')}.`,
    });
  }

  target(name: string): DeployTarget {
    return this.#targets.get(name)!;
  }

  /** What a deploy of the current build would change; stores the plan and touches nothing else. */
  async plan(name: string, ctx: ToolContext): Promise<Outcome<PlanResult>> {
    const found = this.environment(name);
    if (!found.ok) return found;
    const env = found.value;
    const target = this.target(name);
    const build = await this.#build(env, ctx);
    if (!build.ok) return build;
    const manifest = await scanTree(build.value, this.config.maxFiles, ctx.signal).catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    });
    if (manifest === undefined) {
      return fail('NOT_FOUND', `the build directory '${env.buildAsWritten}' of '${name}' does not exist`, {
        hint: 'Run the build first; the deploy config names its output directory.',
      });
    }
    const baseRelease = await target.current(ctx);
    const record =
      (await this.#store.get<EnvironmentRecord>(keys.environment(name)))?.value ?? emptyEnvironment;
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
      createdAt: this.#now(),
      summary: {
        added: diff.added.count,
        changed: diff.changed.count,
        removed: diff.removed.count,
        unchanged: diff.unchanged.count,
        bytes: diff.added.bytes + diff.changed.bytes,
      },
    };
    await this.#store.put(keys.plan(plan.planId), plan, { ttlMs: planTtlMs });

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
    const warnings: string[] = [];
    const attempt = await this.#store.get<AttemptRecord>(keys.attempt(name));
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
      approveCommand: env.policy.requiresApproval ? this.#approveCommand(plan) : null,
    });
  }

  /**
   * Applies a stored plan: approval (when required), the lock, reconciliation of an interrupted run,
   * then replay, staleness, copy, switch, health and record. A failed health check switches back.
   */
  async apply(planId: string, ctx: ToolContext): Promise<Outcome<ApplyResult>> {
    const stored = await this.#store.get<PlanRecord>(keys.plan(planId));
    if (stored === undefined) {
      return fail('NOT_FOUND', `plan '${planId}' does not exist (or is older than 7 days)`, {
        hint: 'Call plan_deploy for the environment and apply the planId it returns.',
      });
    }
    const plan = stored.value;
    const found = this.environment(plan.environment);
    if (!found.ok) return found;
    const env = found.value;

    let approval: ApprovalPayload | undefined;
    if (env.policy.requiresApproval) {
      const checked = this.#checkApproval(plan, ctx);
      if (!checked.ok) return checked;
      approval = checked.value;
      ctx.setAuditActor(approval.approver);
    }

    const acquired = await EnvironmentLock.acquire(this.#store, env.name, {
      owner: this.#owner,
      operation: 'apply',
      planId,
      leaseMs: env.lock.leaseSeconds * 1000,
      now: this.#now(),
    });
    if (!acquired.ok) return inProgress(env.name, acquired.holder);
    const lock = acquired.lock;
    try {
      const { notes, finishedNonce } = await this.#reconcile(env, ctx);
      // A token whose own interrupted deploy this call just finished is not reused: the retry gets that deploy.
      if (approval !== undefined && approval.nonce !== finishedNonce) {
        const spent = await this.#spendNonce(approval, plan);
        if (!spent.ok) return spent;
      }
      const outcome = await this.#applyLocked(env, plan, approval, lock, notes, ctx);
      // The approval is spent only by the switch it allowed; a refusal or failure before it gives it back.
      if (approval !== undefined && !outcome.ok && !outcome.switched) {
        await this.#store.delete(keys.nonce(approval.nonce));
      }
      return outcome.ok ? ok(outcome.value) : { ok: false, error: outcome.error };
    } finally {
      await lock.release();
    }
  }

  async #applyLocked(
    env: EnvironmentConfig,
    plan: PlanRecord,
    approval: ApprovalPayload | undefined,
    lock: EnvironmentLock,
    notes: string[],
    ctx: ToolContext,
  ): Promise<
    | { ok: true; value: ApplyResult }
    | { ok: false; error: ReturnType<typeof fail>['error']; switched: boolean }
  > {
    const refuse = (refusal: { ok: false; error: ReturnType<typeof fail>['error'] }) => ({
      ...refusal,
      switched: false,
    });
    const target = this.target(env.name);
    const envEntry = await this.#store.get<EnvironmentRecord>(keys.environment(env.name));
    const record = envEntry?.value ?? emptyEnvironment;
    const current = await target.current(ctx);

    const existing = await this.#store.get<ReleaseRecord>(keys.release(env.name, plan.releaseId));
    if (existing !== undefined) {
      if (existing.value.generation === record.generation) {
        return { ok: true, value: applyResultOf(existing.value, current, true, notes) };
      }
      return refuse(
        fail(
          'STALE_PLAN',
          `plan '${plan.planId}' was applied as '${plan.releaseId}', and '${env.name}' has changed since`,
          {
            hint: 'Call plan_deploy again and apply the new plan.',
            details: { planId: plan.planId, releaseId: plan.releaseId, current },
          },
        ),
      );
    }
    if (record.generation !== plan.generation || current !== plan.baseRelease) {
      return refuse(
        fail(
          'STALE_PLAN',
          `plan '${plan.planId}' was made before the latest release or rollback of '${env.name}'`,
          {
            hint: 'Call plan_deploy again and apply the new plan.',
            details: { planId: plan.planId, plannedAgainst: plan.baseRelease, current },
          },
        ),
      );
    }
    if (plan.configHash !== sha256Hex(canonicalJson(env))) {
      return refuse(
        fail(
          'STALE_PLAN',
          `the deploy config of '${env.name}' changed since plan '${plan.planId}' was made`,
          {
            hint: 'Call plan_deploy again and apply the new plan.',
          },
        ),
      );
    }
    await lock.phase('hashing');
    const build = await this.#build(env, ctx);
    if (!build.ok) return refuse(build);
    const manifest = await scanTree(build.value, this.config.maxFiles, ctx.signal).catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    });
    if (manifest?.hash !== plan.buildHash) {
      return refuse(
        fail('STALE_PLAN', `the build '${env.buildAsWritten}' changed since plan '${plan.planId}' was made`, {
          hint: 'Call plan_deploy again to see what would change now, and apply that plan.',
          details: {
            planId: plan.planId,
            plannedBuildHash: plan.buildHash,
            buildHash: manifest?.hash ?? null,
          },
        }),
      );
    }

    const attempt: AttemptRecord & { operation: 'apply' } = {
      operation: 'apply',
      planId: plan.planId,
      planHash: plan.planHash,
      releaseId: plan.releaseId,
      baseRelease: plan.baseRelease,
      generation: record.generation,
      phase: 'copying',
      startedAt: this.#now(),
      approvedBy: approval?.approver ?? null,
      nonce: approval?.nonce ?? null,
    };
    await this.#putAttempt(env.name, attempt, 0);
    await lock.phase('copying');
    let files: PreparedRelease;
    try {
      const step = Math.max(1, Math.floor(manifest.files / 20));
      files = await target.prepare({
        releaseId: plan.releaseId,
        build: build.value,
        manifest,
        base: plan.baseRelease,
        signal: ctx.signal,
        onProgress: (done, total) => {
          if (done % step !== 0 && done !== total) return;
          ctx.progress(done, total, `copied ${done} of ${total} files`);
          lock.progress(done, total);
        },
      });
    } catch (error) {
      await this.#store.delete(keys.attempt(env.name));
      if (error instanceof BuildChangedError) {
        return refuse(
          fail('STALE_PLAN', `the build changed during the deploy (${error.message}); nothing was switched`, {
            hint: 'Wait for the build to finish, then plan_deploy again.',
          }),
        );
      }
      throw error;
    }
    await this.#updateAttempt(env.name, { ...attempt, phase: 'switching', files });
    await lock.phase('switching');
    const activated = await this.#activate(
      env,
      plan.releaseId,
      { fresh: true, previous: plan.baseRelease },
      ctx,
    );
    if (!activated.ok) {
      await this.#commit([
        { kind: 'delete', key: keys.attempt(env.name) },
        { kind: 'delete', key: keys.manifest(env.name, plan.releaseId) },
      ]);
      await target.remove(plan.releaseId);
      return refuse(activated);
    }
    await this.#updateAttempt(env.name, { ...attempt, phase: 'checking', files });
    await lock.phase('checking');
    const finished = await this.#checkAndFinish(env, { ...attempt, files }, ctx);
    return { ok: true, value: { ...finished, notes: [...notes, ...finished.notes] } };
  }

  /** After the switch: the health check, the switch back if it fails, the record, the pruning. */
  async #checkAndFinish(
    env: EnvironmentConfig,
    attempt: AttemptRecord & { operation: 'apply'; files: PreparedRelease },
    ctx: ToolContext,
  ): Promise<ApplyResult> {
    const target = this.target(env.name);
    const health =
      env.policy.health === undefined
        ? null
        : await runHealthCheck(env.policy.health, { ctx, cwd: this.config.projectRoot });
    let status: ReleaseRecord['status'] = 'live';
    const notes: string[] = [];
    if (health !== null && !health.ok) {
      await this.#updateAttempt(env.name, { ...attempt, phase: 'rolling_back', health });
      if (await this.#restore(env, attempt.baseRelease, attempt.releaseId, ctx)) status = 'rolled_back';
      else
        notes.push(
          `the health check failed and '${env.name}' has no earlier release to go back to: '${attempt.releaseId}' stays live`,
        );
    }
    const release = await this.#recordApply(env, attempt, status, health);
    await this.#prune(env, ctx);
    return applyResultOf(release, await target.current(ctx), false, notes);
  }

  async #recordApply(
    env: EnvironmentConfig,
    attempt: AttemptRecord & { operation: 'apply'; files: PreparedRelease },
    status: ReleaseRecord['status'],
    health: HealthResult | null,
  ): Promise<ReleaseRecord> {
    const envEntry = await this.#store.get<EnvironmentRecord>(keys.environment(env.name));
    const { release, ops } = recordApplyOps({
      attempt,
      environment: env.name,
      envRecord: envEntry?.value ?? emptyEnvironment,
      envVersion: envEntry?.version ?? 0,
      status,
      health,
      files: attempt.files,
      now: this.#now(),
    });
    await this.#commit(ops);
    return release;
  }

  /**
   * Makes a release live through the target. A command that failed is checked against the target's
   * own answer when it has one: `{ ok: false }` means nothing changed; an outcome nobody can tell
   * throws UNKNOWN_STATE and leaves the attempt for a human.
   */
  async #activate(
    env: EnvironmentConfig,
    releaseId: string,
    options: { fresh: boolean; previous: string | null },
    ctx: ToolContext,
  ): Promise<Outcome<void>> {
    const target = this.target(env.name);
    try {
      await target.activate(releaseId, { ...options, build: await this.#buildPath(env, ctx), ctx });
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

  /**
   * The build directory's real path, which must lie inside the roots like every path a tool touches:
   * a `dist` that is a symlink to elsewhere is refused rather than deployed.
   */
  async #build(env: EnvironmentConfig, ctx: ToolContext): Promise<Outcome<string>> {
    const resolved = await ctx.jail.resolve(env.build);
    if (!resolved.ok) {
      return fail(
        resolved.error.code,
        `the build directory '${env.buildAsWritten}' of '${env.name}': ${resolved.error.message}`,
        {
          hint: 'The build output must be a directory inside the project root (--root), not a link out of it.',
        },
      );
    }
    if (!resolved.value.exists) {
      return fail(
        'NOT_FOUND',
        `the build directory '${env.buildAsWritten}' of '${env.name}' does not exist`,
        {
          hint: 'Run the build first; the deploy config names its output directory.',
        },
      );
    }
    return ok(resolved.value.real);
  }

  async #buildPath(env: EnvironmentConfig, ctx: ToolContext): Promise<string> {
    const build = await this.#build(env, ctx);
    return build.ok ? build.value : env.build;
  }

  /** Goes back to `to` (or to nothing) after a failed health check; false when the target cannot. */
  async #restore(
    env: EnvironmentConfig,
    to: string | null,
    from: string,
    ctx: ToolContext,
  ): Promise<boolean> {
    const target = this.target(env.name);
    if (to === null) return await target.deactivate(ctx);
    const restored = await this.#activate(env, to, { fresh: false, previous: from }, ctx);
    if (!restored.ok) throw new KeelError(restored.error.code, restored.error.message, restored.error);
    return true;
  }

  /** Switches back to the previous live release, or to a named one; a no-op when it is already live. */
  async rollback(name: string, to: string | undefined, ctx: ToolContext): Promise<Outcome<RollbackResult>> {
    const found = this.environment(name);
    if (!found.ok) return found;
    const env = found.value;
    const acquired = await EnvironmentLock.acquire(this.#store, name, {
      owner: this.#owner,
      operation: 'rollback',
      planId: null,
      leaseMs: env.lock.leaseSeconds * 1000,
      now: this.#now(),
    });
    if (!acquired.ok) return inProgress(name, acquired.holder);
    const lock = acquired.lock;
    try {
      const { notes } = await this.#reconcile(env, ctx);
      const target = this.target(name);
      const current = await target.current(ctx);
      const releases = await this.#releaseInfos(name, current);
      let destination = to;
      if (destination === undefined) {
        const currentSeq = releases.find((release) => release.current)?.seq ?? Number.POSITIVE_INFINITY;
        destination = releases.find(
          (release) => !release.current && release.status === 'live' && (release.seq ?? 0) < currentSeq,
        )?.releaseId;
        if (destination === undefined) {
          return fail('NOT_FOUND', `'${name}' has no earlier live release to roll back to`, {
            hint: `Releases on the target: ${releases.map((release) => release.releaseId).join(', ') || 'none'}.`,
          });
        }
      } else if (!releases.some((release) => release.releaseId === destination)) {
        return fail('NOT_FOUND', `release '${destination}' is not on the target of '${name}'`, {
          hint: `Releases on the target: ${releases.map((release) => release.releaseId).join(', ') || 'none'}.`,
        });
      }
      if (destination === current) {
        return ok({ environment: name, from: current, to: destination, changed: false, health: null, notes });
      }
      const envEntry = await this.#store.get<EnvironmentRecord>(keys.environment(name));
      const record = envEntry?.value ?? emptyEnvironment;
      await this.#putAttempt(
        name,
        {
          operation: 'rollback',
          from: current,
          to: destination,
          generation: record.generation,
          phase: 'switching',
          startedAt: this.#now(),
        },
        0,
      );
      await lock.phase('switching');
      const activated = await this.#activate(env, destination, { fresh: false, previous: current }, ctx);
      if (!activated.ok) {
        await this.#store.delete(keys.attempt(name));
        return activated;
      }
      await this.#recordRollback(name, destination);
      const health =
        env.policy.health === undefined
          ? null
          : await runHealthCheck(env.policy.health, { ctx, cwd: this.config.projectRoot });
      return ok({ environment: name, from: current, to: destination, changed: true, health, notes });
    } finally {
      await lock.release();
    }
  }

  async #recordRollback(name: string, to: string): Promise<void> {
    const envEntry = await this.#store.get<EnvironmentRecord>(keys.environment(name));
    await this.#commit(
      recordRollbackOps({
        environment: name,
        envRecord: envEntry?.value ?? emptyEnvironment,
        envVersion: envEntry?.version ?? 0,
        to,
        now: this.#now(),
      }),
    );
  }

  /**
   * Finishes or cleans up what an interrupted apply or rollback left (the caller holds the lock). The
   * target says what happened: a switched release is health-checked and recorded; one that never
   * went live is removed, its approval given back.
   */
  async #reconcile(
    env: EnvironmentConfig,
    ctx: ToolContext,
  ): Promise<{ notes: string[]; finishedNonce: string | null }> {
    const target = this.target(env.name);
    await target.sweep();
    const entry = await this.#store.get<AttemptRecord>(keys.attempt(env.name));
    if (entry === undefined) return { notes: [], finishedNonce: null };
    const attempt = entry.value;
    const settled = attempt.operation === 'apply' && attempt.phase === 'copying';
    if (!target.observesCurrent && !settled) {
      throw unknownState(
        env.name,
        `an interrupted ${attempt.operation} (phase ${attempt.phase}) may or may not have gone live, and the target has no current command to ask`,
      );
    }
    const current = await target.current(ctx);
    if (attempt.operation === 'rollback') {
      if (current === attempt.to) {
        await this.#recordRollback(env.name, attempt.to);
        return { notes: [`finished an interrupted rollback to '${attempt.to}'`], finishedNonce: null };
      }
      await this.#store.delete(keys.attempt(env.name));
      return {
        notes: [`an interrupted rollback to '${attempt.to}' had not switched; it was dropped`],
        finishedNonce: null,
      };
    }
    const files = attempt.files ?? { copied: 0, linked: 0, bytesWritten: 0 };
    if (attempt.phase === 'rolling_back') {
      if (current === attempt.releaseId)
        await this.#restore(env, attempt.baseRelease, attempt.releaseId, ctx);
      await this.#recordApply(env, { ...attempt, files }, 'rolled_back', attempt.health ?? null);
      await this.#prune(env, ctx);
      return {
        notes: [
          `finished rolling back '${attempt.releaseId}' after its failed health check, which an interruption had cut short`,
        ],
        finishedNonce: attempt.nonce,
      };
    }
    if (current === attempt.releaseId && attempt.phase !== 'copying') {
      const finished = await this.#checkAndFinish(env, { ...attempt, files }, ctx);
      return {
        notes: [`finished the interrupted deploy of '${attempt.releaseId}': ${finished.status}`],
        finishedNonce: attempt.nonce,
      };
    }
    if (current !== attempt.releaseId) await target.remove(attempt.releaseId);
    const ops: StateOp[] = [
      { kind: 'delete', key: keys.attempt(env.name) },
      { kind: 'delete', key: keys.manifest(env.name, attempt.releaseId) },
    ];
    if (attempt.nonce !== null) ops.push({ kind: 'delete', key: keys.nonce(attempt.nonce) });
    await this.#commit(ops);
    return {
      notes: [
        `cleaned up the interrupted deploy of '${attempt.releaseId}' (plan '${attempt.planId}'), which had not gone live`,
      ],
      finishedNonce: null,
    };
  }

  /** Releases on the target, newest first, with what the state knows of each. */
  async #releaseInfos(name: string, current: string | null): Promise<ReleaseInfo[]> {
    const onDisk = await this.target(name).releases();
    const records = new Map<string, ReleaseRecord>();
    for (const entry of await this.#listAll<ReleaseRecord>(keys.releases(name)))
      records.set(entry.value.releaseId, entry.value);
    const infos = onDisk.map((releaseId): ReleaseInfo => {
      const record = records.get(releaseId);
      return {
        releaseId,
        current: releaseId === current,
        seq: record?.seq ?? null,
        createdAt: record === undefined ? null : new Date(record.createdAt).toISOString(),
        planId: record?.planId ?? null,
        status: record?.status ?? null,
        healthOk: record?.health?.ok ?? null,
        approvedBy: record?.approvedBy ?? null,
      };
    });
    return infos.sort((a, b) => (b.seq ?? 0) - (a.seq ?? 0) || (a.releaseId < b.releaseId ? 1 : -1));
  }

  async releases(
    name: string,
    ctx: ToolContext,
  ): Promise<Outcome<{ current: string | null; releases: ReleaseInfo[] }>> {
    const found = this.environment(name);
    if (!found.ok) return found;
    const current = await this.target(name).current(ctx);
    return ok({ current, releases: await this.#releaseInfos(name, current) });
  }

  /** Keeps the newest `keep` releases by sequence, and always the live one. */
  async #prune(env: EnvironmentConfig, ctx: ToolContext): Promise<void> {
    const target = this.target(env.name);
    const current = await target.current(ctx);
    const infos = await this.#releaseInfos(env.name, current);
    for (const info of infos.slice(env.policy.keep)) {
      if (info.current) continue;
      await target.remove(info.releaseId);
      await this.#store.delete(keys.release(env.name, info.releaseId));
    }
  }

  async status(name: string, ctx: ToolContext): Promise<Outcome<EnvironmentStatus>> {
    const found = this.environment(name);
    if (!found.ok) return found;
    const current = await this.target(name).current(ctx);
    const record =
      (await this.#store.get<EnvironmentRecord>(keys.environment(name)))?.value ?? emptyEnvironment;
    const lock = (await this.#store.get<LockHolder>(keys.lock(name)))?.value;
    const live = lock !== undefined && !holderIsDead(lock) ? lock : undefined;
    const attempt = (await this.#store.get<AttemptRecord>(keys.attempt(name)))?.value;
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

  async health(
    name: string,
    ctx: ToolContext,
  ): Promise<Outcome<{ current: string | null; health: HealthResult | null }>> {
    const found = this.environment(name);
    if (!found.ok) return found;
    const env = found.value;
    const current = await this.target(name).current(ctx);
    if (env.policy.health === undefined) return ok({ current, health: null });
    return ok({
      current,
      health: await runHealthCheck(env.policy.health, { ctx, cwd: this.config.projectRoot }),
    });
  }

  #checkApproval(plan: PlanRecord, ctx: ToolContext): Outcome<ApprovalPayload> {
    const token = ctx.meta?.[APPROVAL_META_KEY];
    const command = this.#approveCommand(plan);
    if (token === undefined) {
      const asked = this.#askApproval(plan, ctx);
      if (asked !== undefined) return asked;
      return fail(
        'APPROVAL_REQUIRED',
        `deploying to '${plan.environment}' needs a person's approval of plan '${plan.planId}'`,
        {
          hint: `This client cannot ask its user (no elicitation). Ask a person holding an approval signing key to run: ${command} — then call apply_deploy again with the printed token in _meta["${APPROVAL_META_KEY}"].${this.#keys.length === 0 ? ' This server was started without --approval-key, so it cannot accept any token yet.' : ''}`,
          details: {
            planId: plan.planId,
            planHash: plan.planHash,
            environment: plan.environment,
            approveCommand: command,
          },
        },
      );
    }
    const verified = verifyApproval(token, this.#keys, {
      tool: 'apply_deploy',
      environment: plan.environment,
      planHash: plan.planHash,
      now: this.#now(),
    });
    if (verified.ok) return ok(verified.payload);
    const messages: Record<typeof verified.reason, string> = {
      malformed: 'the approval token is not a keel-approval token',
      forged: 'the approval token is not signed by a key this server trusts',
      expired: 'the approval token has expired',
      other_tool: `the approval token approves ${verified.payload?.tool ?? 'another tool'}, not apply_deploy`,
      other_environment: `the approval token is for environment '${verified.payload?.environment ?? '?'}', not '${plan.environment}'`,
      other_plan: `the approval token is for another plan (plan hash ${verified.payload?.planHash.slice(0, 12) ?? '?'}…), not '${plan.planId}'`,
      reused: 'the approval token was already used',
    };
    return fail('APPROVAL_REJECTED', messages[verified.reason], {
      hint: `Get a new approval for this plan: ${command}`,
      details: { reason: verified.reason, planId: plan.planId, environment: plan.environment },
    });
  }

  /**
   * Asks the person at the client to approve the plan (its summary and hash) when the client can show
   * a form. Undefined when it cannot: the caller then needs a token. The sealed question is bound to
   * the environment and plan hash, so an answer can approve nothing else, and its id is spent like a
   * token's nonce.
   */
  #askApproval(plan: PlanRecord, ctx: ToolContext): Outcome<ApprovalPayload> | undefined {
    const command = this.#approveCommand(plan);
    const outOfBand = `Approve out of band instead: ${command} — then call apply_deploy again with the printed token in _meta["${APPROVAL_META_KEY}"], or call apply_deploy again to be asked anew.`;
    const summary = plan.summary;
    const asked = ctx.ask({
      id: 'approve_deploy',
      message: [
        `Deploy plan ${plan.planId} to '${plan.environment}'?`,
        `Release ${plan.releaseId} replaces ${plan.baseRelease ?? 'nothing (first release)'}.`,
        summary === undefined
          ? undefined
          : `Files: ${summary.added} added, ${summary.changed} changed, ${summary.removed} removed, ${summary.unchanged} unchanged (${summary.bytes} bytes to write).`,
        `Plan hash: ${plan.planHash}`,
      ]
        .filter((line) => line !== undefined)
        .join('\n'),
      schema: z.object({
        approve: z.boolean().describe(`Deploy ${plan.planId} to ${plan.environment} now.`),
        approver: z
          .string()
          .min(1)
          .max(100)
          .describe('Your name, recorded in the audit log as the approver.'),
      }),
      about: `${plan.environment}\0${plan.planHash}`,
      ttlMs: approvalQuestionTtlMs,
    });
    const details = { planId: plan.planId, planHash: plan.planHash, environment: plan.environment };
    switch (asked.status) {
      case 'unsupported':
        return undefined;
      case 'pending':
        return asked.outcome;
      case 'refused':
        return fail(
          'APPROVAL_REJECTED',
          asked.reason === 'expired'
            ? `the approval question for plan '${plan.planId}' expired before it was answered`
            : `the approval answer for plan '${plan.planId}' cannot be trusted: ${asked.error.message}`,
          { hint: outOfBand, details: { ...details, reason: asked.reason } },
        );
      case 'answered':
        if (asked.action === 'cancel')
          return fail(
            'APPROVAL_REQUIRED',
            `the person at the client cancelled the approval of '${plan.planId}'`,
            {
              hint: outOfBand,
              details: { ...details, reason: 'cancelled' },
            },
          );
        if (asked.action === 'decline' || (asked.action === 'accept' && !asked.content.approve))
          return fail('APPROVAL_REJECTED', `the person at the client declined to deploy '${plan.planId}'`, {
            hint: 'Nothing was deployed. Change what they objected to, plan again and apply the new plan.',
            details: { ...details, reason: 'declined' },
          });
        if (asked.action !== 'accept') return undefined;
        return ok({
          tool: 'apply_deploy',
          environment: plan.environment,
          planId: plan.planId,
          planHash: plan.planHash,
          approver: `${asked.content.approver} (asked at the client)`,
          issuedAt: this.#now(),
          expiresAt: this.#now() + approvalQuestionTtlMs,
          // The question's own id, spent once like a token's nonce.
          nonce: createHash('sha256').update(asked.stateId).digest('hex').slice(0, 32),
        });
    }
  }

  async #spendNonce(approval: ApprovalPayload, plan: PlanRecord): Promise<Outcome<void>> {
    const spent = await this.#store.put(
      keys.nonce(approval.nonce),
      { planId: plan.planId, environment: plan.environment, approver: approval.approver, at: this.#now() },
      { ifVersion: 0, ttlMs: Math.max(1, approval.expiresAt - this.#now()) + 60_000 },
    );
    if (spent.ok) return ok(undefined);
    return fail('APPROVAL_REJECTED', 'the approval token was already used', {
      hint: `An approval is single-use. Get a new one: ${this.#approveCommand(plan)}`,
      details: { reason: 'reused', planId: plan.planId, environment: plan.environment },
    });
  }

  #approveCommand(plan: PlanRecord): string {
    return `${this.#bin} approve ${plan.planId} --environment ${plan.environment} --plan-hash ${plan.planHash} --approver NAME --signing-key FILE`;
  }

  async #putAttempt(name: string, attempt: AttemptRecord, ifVersion: number): Promise<void> {
    const put = await this.#store.put(keys.attempt(name), attempt, { ifVersion });
    if (!put.ok) throw new Error(`another deploy of '${name}' is recorded as under way`);
  }

  async #updateAttempt(name: string, attempt: AttemptRecord): Promise<void> {
    await this.#store.put(keys.attempt(name), attempt);
  }

  async #commit(ops: StateOp[]): Promise<void> {
    const result = await this.#store.commit(ops);
    if (!result.ok) throw new Error(`state changed under the deploy lock at '${result.key}'`);
  }

  async #listAll<TValue>(prefix: string): Promise<StateEntry<TValue>[]> {
    const all: StateEntry<TValue>[] = [];
    for (let after: string | undefined; ;) {
      const page = await this.#store.list<TValue>({
        prefix,
        limit: 500,
        ...(after === undefined ? {} : { after }),
      });
      all.push(...page);
      if (page.length < 500) return all;
      after = page[page.length - 1]!.key;
    }
  }
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

function unknownState(environment: string, what: string): KeelError {
  return new KeelError('UNKNOWN_STATE', `'${environment}': ${what}`, {
    hint: `Check by hand which release is live on the target, then record it: keel-deploy resolve ${environment} --live <releaseId|none> (with the server's --state-dir).`,
  });
}

function inProgress(environment: string, holder: LockHolder) {
  return fail(
    'IN_PROGRESS',
    `another ${holder.operation} of '${environment}' is under way${holder.planId === null ? '' : ` (plan '${holder.planId}')`}, phase ${holder.phase}`,
    {
      hint: 'Wait for it (deploy_status shows its progress), then retry.',
      details: {
        environment,
        holderPlanId: holder.planId,
        operation: holder.operation,
        phase: holder.phase,
        since: new Date(holder.acquiredAt).toISOString(),
      },
    },
  );
}
