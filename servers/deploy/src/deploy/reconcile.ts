import type { ToolContext } from '@keel/kit';
import type { EnvironmentConfig } from '../config/config.js';
import { unknownState, type DeployContext } from './context.js';
import type { EnvironmentLock } from './lock.js';
import { dropApply, resumeOf, runPhases, type ApplyRun } from './phases.js';
import { keys, type AttemptRecord } from './records.js';
import { recordRollback } from './state.js';

export interface Reconciled {
  /** What was done, for the caller's result. */
  notes: string[];
  /** The approval nonce of an interrupted apply that this finished (its retry is not a reuse). */
  finishedNonce: string | null;
}

/**
 * Finishes or cleans up what an interrupted apply or rollback left (the caller holds the lock). The
 * target says what happened, and the apply phase table says what follows: a switched release is
 * health-checked and recorded; one that never went live is removed, its approval given back.
 */
export async function reconcile(
  deps: DeployContext,
  env: EnvironmentConfig,
  lock: EnvironmentLock,
  ctx: ToolContext,
): Promise<Reconciled> {
  const target = deps.target(env.name);
  await target.sweep();
  const entry = await deps.store.get<AttemptRecord>(keys.attempt(env.name));
  if (entry === undefined) return { notes: [], finishedNonce: null };
  const attempt = entry.value;
  const settled = attempt.operation === 'apply' && resumeOf(attempt.phase, undefined) !== undefined;
  if (!target.observesCurrent && !settled) {
    throw unknownState(
      env.name,
      `an interrupted ${attempt.operation} (phase ${attempt.phase}) may or may not have gone live, and the target has no current command to ask`,
    );
  }
  const current = await target.current(ctx);
  if (attempt.operation === 'rollback') {
    if (current === attempt.to) {
      await recordRollback(deps.store, env.name, attempt.to, deps.now());
      return { notes: [`finished an interrupted rollback to '${attempt.to}'`], finishedNonce: null };
    }
    await deps.store.delete(keys.attempt(env.name));
    return {
      notes: [`an interrupted rollback to '${attempt.to}' had not switched; it was dropped`],
      finishedNonce: null,
    };
  }
  const run: ApplyRun = { deps, env, ctx, lock, attempt, live: current };
  const resume = resumeOf(attempt.phase, current === attempt.releaseId)!;
  const finished = resume === 'drop' ? undefined : await runPhases(run, resume);
  if (finished?.ok === true) {
    return {
      notes: [
        attempt.phase === 'rolling_back'
          ? `finished rolling back '${attempt.releaseId}' after its failed health check, which an interruption had cut short`
          : `finished the interrupted deploy of '${attempt.releaseId}': ${finished.value.release.status}`,
      ],
      finishedNonce: attempt.nonce,
    };
  }
  if (finished === undefined) await dropApply(run);
  return {
    notes: [
      `cleaned up the interrupted deploy of '${attempt.releaseId}' (plan '${attempt.planId}'), which had not gone live`,
    ],
    finishedNonce: null,
  };
}
