import { fail, ok, type Outcome, type ToolContext } from '@keel/kit';
import type { Manifest } from '../build/manifest.js';
import type { EnvironmentConfig } from '../config/config.js';
import { runHealthCheck, type HealthResult } from '../health/healthCheck.js';
import { BuildChangedError, type PreparedRelease } from '../target/target.js';
import type { DeployContext, Refusal } from './context.js';
import type { EnvironmentLock } from './lock.js';
import { dropApplyOps, type ReleaseRecord } from './records.js';
import { prune } from './releaseSet.js';
import { commit, recordApply, updateAttempt, type ApplyAttempt } from './state.js';
import { activate, restore } from './switching.js';

export type ApplyPhase = ApplyAttempt['phase'];

/** One apply attempt as its phases carry it, whether a fresh apply or one reconcile picks up. */
export interface ApplyRun {
  readonly deps: DeployContext;
  readonly env: EnvironmentConfig;
  readonly ctx: ToolContext;
  readonly lock: EnvironmentLock;
  /** The attempt as recorded: its phase, and `files` once copied, `health` once checked. */
  attempt: ApplyAttempt;
  /** What the target shows live, as far as this run knows. */
  live: string | null;
  /** The build to copy: only a fresh apply has it, since an interrupted copy is never resumed. */
  readonly source?: { dir: string; manifest: Manifest };
}

/** What a phase learnt that the attempt records as it moves on. */
type Recorded = Pick<ApplyAttempt, 'files' | 'health'>;

type Step =
  | { next: ApplyPhase; record?: Recorded }
  | { finish: ReleaseRecord['status']; health: HealthResult | null; notes: string[] }
  | { drop: Refusal };

/** What an apply interrupted in a phase does next: drop it, or run on from a phase. */
export type Resume = ApplyPhase | 'drop';

interface Phase {
  /**
   * Where reconcile picks up an apply interrupted in this phase: one answer whatever is live, or one
   * for when the target shows the attempt's release live and one for when it does not.
   */
  readonly resume: Resume | { live: Resume; notLive: Resume };
  run(run: ApplyRun): Promise<Step>;
}

const noFiles = { copied: 0, linked: 0, bytesWritten: 0 };

/**
 * The apply attempt's phases, in the order a fresh apply walks them (copying → switching → checking,
 * and rolling_back when the check fails). Reconcile follows the same table from the phase an
 * interrupted run recorded, so each transition is written once.
 */
export const applyPhases: Readonly<Record<ApplyPhase, Phase>> = {
  copying: {
    // An interrupted copy never switched: whatever is live, it is dropped.
    resume: 'drop',
    async run({ deps, env, ctx, lock, attempt, source }) {
      if (source === undefined) throw new Error('copying needs the build it copies');
      const step = Math.max(1, Math.floor(source.manifest.files / 20));
      let files: PreparedRelease;
      try {
        files = await deps.target(env.name).prepare({
          releaseId: attempt.releaseId,
          build: source.dir,
          manifest: source.manifest,
          base: attempt.baseRelease,
          signal: ctx.signal,
          onProgress: (done, total) => {
            if (done % step !== 0 && done !== total) return;
            ctx.progress(done, total, `copied ${done} of ${total} files`);
            lock.progress(done, total);
          },
        });
      } catch (error) {
        if (!(error instanceof BuildChangedError)) throw error;
        return {
          drop: fail(
            'STALE_PLAN',
            `the build changed during the deploy (${error.message}); nothing was switched`,
            { hint: 'Wait for the build to finish, then plan_deploy again.' },
          ),
        };
      }
      deps.crash('deploy.after-copy', ctx);
      return { next: 'switching', record: { files } };
    },
  },
  switching: {
    resume: { live: 'checking', notLive: 'drop' },
    async run(run) {
      const { attempt } = run;
      const activated = await activate(
        run.deps,
        run.env,
        attempt.releaseId,
        { fresh: true, previous: attempt.baseRelease },
        run.ctx,
      );
      if (!activated.ok) return { drop: activated };
      run.live = attempt.releaseId;
      run.deps.crash('deploy.after-switch', run.ctx);
      return { next: 'checking' };
    },
  },
  checking: {
    resume: { live: 'checking', notLive: 'drop' },
    async run({ deps, env, ctx }) {
      const health =
        env.policy.health === undefined
          ? null
          : await runHealthCheck(env.policy.health, { ctx, cwd: deps.config.projectRoot });
      if (health === null || health.ok) return { finish: 'live', health, notes: [] };
      return { next: 'rolling_back', record: { health } };
    },
  },
  rolling_back: {
    resume: { live: 'rolling_back', notLive: 'rolling_back' },
    async run({ deps, env, ctx, attempt, live }) {
      const health = attempt.health ?? null;
      if (live !== attempt.releaseId) return { finish: 'rolled_back', health, notes: [] };
      const restored = await restore(deps, env, attempt.baseRelease, attempt.releaseId, ctx);
      deps.crash('deploy.after-switch-back', ctx);
      if (restored) return { finish: 'rolled_back', health, notes: [] };
      return {
        finish: 'live',
        health,
        notes: [
          `the health check failed and '${env.name}' has no earlier release to go back to: '${attempt.releaseId}' stays live`,
        ],
      };
    },
  },
};

/** Where an interrupted apply picks up, given what the target shows live (undefined: not asked). */
export function resumeOf(phase: ApplyPhase, liveIsRelease: boolean | undefined): Resume | undefined {
  const resume = applyPhases[phase].resume;
  if (typeof resume === 'string') return resume;
  return liveIsRelease === undefined ? undefined : liveIsRelease ? resume.live : resume.notLive;
}

/**
 * Walks the phases from `from`: records each phase before doing it (so a crash leaves what
 * reconcile needs), then records the release and prunes, or drops the attempt with its refusal.
 */
export async function runPhases(
  run: ApplyRun,
  from: ApplyPhase,
): Promise<Outcome<{ release: ReleaseRecord; notes: string[] }>> {
  const { deps, env } = run;
  let record: Recorded = {};
  for (let phase = from; ;) {
    if (run.attempt.phase !== phase) {
      run.attempt = { ...run.attempt, ...record, phase };
      await updateAttempt(deps.store, env.name, run.attempt);
    }
    await run.lock.phase(phase);
    let step: Step;
    try {
      step = await applyPhases[phase].run(run);
    } catch (error) {
      // A copy that failed for another reason never switched either: drop it, then report the failure.
      if (phase === 'copying') await dropApply(run);
      throw error;
    }
    if ('next' in step) {
      phase = step.next;
      record = step.record ?? {};
      continue;
    }
    if ('drop' in step) {
      await dropApply(run);
      return step.drop;
    }
    const release = await recordApply(
      deps.store,
      env.name,
      { ...run.attempt, files: run.attempt.files ?? noFiles },
      step.finish,
      step.health,
      deps.now(),
    );
    deps.crash('deploy.between-release-and-prune', run.ctx);
    await prune(deps, env, run.ctx);
    return ok({ release, notes: step.notes });
  }
}

/** Removes an attempt's release unless it is live, then its attempt, manifest and spent approval. */
export async function dropApply(run: ApplyRun): Promise<void> {
  if (run.live !== run.attempt.releaseId) await run.deps.target(run.env.name).remove(run.attempt.releaseId);
  await commit(run.deps.store, dropApplyOps(run.env.name, run.attempt));
}
