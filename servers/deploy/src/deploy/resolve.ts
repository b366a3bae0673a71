import type { StateStore } from '@keel/kit';
import {
  dropApplyOps,
  emptyEnvironment,
  keys,
  recordApplyOps,
  recordRollbackOps,
  type AttemptRecord,
  type EnvironmentRecord,
} from './records.js';

export type Resolution = { ok: true; message: string } | { ok: false; message: string };

/**
 * Settles an interrupted deploy that the server cannot reconcile by itself (a command target without
 * a `current` command): a person looked at the target and says what is live. Only the two answers
 * that make sense are taken — the interrupted release, or what was live before it.
 */
export async function resolveInterrupted(
  store: StateStore,
  environment: string,
  live: string | null,
  now: number,
): Promise<Resolution> {
  const entry = await store.get<AttemptRecord>(keys.attempt(environment));
  if (entry === undefined)
    return { ok: true, message: `nothing to resolve: '${environment}' has no interrupted deploy` };
  const attempt = entry.value;
  const envEntry = await store.get<EnvironmentRecord>(keys.environment(environment));
  const envRecord = envEntry?.value ?? emptyEnvironment;
  const envVersion = envEntry?.version ?? 0;
  const name = (id: string | null) => (id === null ? 'none' : id);
  if (attempt.operation === 'rollback') {
    if (live === attempt.to) {
      const result = await store.commit(
        recordRollbackOps({ environment, envRecord, envVersion, to: attempt.to, now }),
      );
      return result.ok
        ? { ok: true, message: `recorded the rollback of '${environment}' to '${attempt.to}'` }
        : { ok: false, message: 'the state changed meanwhile; run resolve again' };
    }
    if (live === attempt.from) {
      await store.delete(keys.attempt(environment));
      return {
        ok: true,
        message: `dropped the interrupted rollback of '${environment}'; '${name(live)}' stays live`,
      };
    }
    return {
      ok: false,
      message: `the interrupted rollback went from '${name(attempt.from)}' to '${attempt.to}'; --live must be one of those`,
    };
  }
  if (live === attempt.releaseId) {
    const { ops } = recordApplyOps({
      attempt,
      environment,
      envRecord,
      envVersion,
      status: 'live',
      health: null,
      files: attempt.files ?? { copied: 0, linked: 0, bytesWritten: 0 },
      now,
    });
    const result = await store.commit(ops);
    return result.ok
      ? {
          ok: true,
          message: `recorded '${attempt.releaseId}' as live on '${environment}' (not health-checked)`,
        }
      : { ok: false, message: 'the state changed meanwhile; run resolve again' };
  }
  if (live === attempt.baseRelease) {
    await store.commit(dropApplyOps(environment, attempt));
    return {
      ok: true,
      message: `dropped the interrupted deploy of '${attempt.releaseId}'; '${name(live)}' stays live and the plan can be applied again`,
    };
  }
  return {
    ok: false,
    message: `the interrupted deploy was of '${attempt.releaseId}' over '${name(attempt.baseRelease)}'; --live must be one of those`,
  };
}
