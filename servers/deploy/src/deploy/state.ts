import type { StateEntry, StateOp, StateStore } from '@keel/kit';
import type { HealthResult } from '../health/healthCheck.js';
import type { PreparedRelease } from '../target/target.js';
import {
  emptyEnvironment,
  keys,
  recordApplyOps,
  recordRollbackOps,
  type AttemptRecord,
  type EnvironmentRecord,
  type ReleaseRecord,
} from './records.js';

export type ApplyAttempt = Extract<AttemptRecord, { operation: 'apply' }>;

/** An environment's counters and the version to write them back at. */
export async function readEnvironment(
  store: StateStore,
  name: string,
): Promise<{ record: EnvironmentRecord; version: number }> {
  const entry = await store.get<EnvironmentRecord>(keys.environment(name));
  return { record: entry?.value ?? emptyEnvironment, version: entry?.version ?? 0 };
}

/** Commits writes that the deploy lock should have kept anyone else from touching. */
export async function commit(store: StateStore, ops: StateOp[]): Promise<void> {
  const result = await store.commit(ops);
  if (!result.ok) throw new Error(`state changed under the deploy lock at '${result.key}'`);
}

/** Records a new attempt; there must be none. */
export async function putAttempt(store: StateStore, name: string, attempt: AttemptRecord): Promise<void> {
  const put = await store.put(keys.attempt(name), attempt, { ifVersion: 0 });
  if (!put.ok) throw new Error(`another deploy of '${name}' is recorded as under way`);
}

export async function updateAttempt(store: StateStore, name: string, attempt: AttemptRecord): Promise<void> {
  await store.put(keys.attempt(name), attempt);
}

/** Records a finished apply (its release, the environment's new generation) and drops its attempt, in one commit. */
export async function recordApply(
  store: StateStore,
  name: string,
  attempt: ApplyAttempt & { files: PreparedRelease },
  status: ReleaseRecord['status'],
  health: HealthResult | null,
  now: number,
): Promise<ReleaseRecord> {
  const { record, version } = await readEnvironment(store, name);
  const { release, ops } = recordApplyOps({
    attempt,
    environment: name,
    envRecord: record,
    envVersion: version,
    status,
    health,
    files: attempt.files,
    now,
  });
  await commit(store, ops);
  return release;
}

export async function recordRollback(
  store: StateStore,
  name: string,
  to: string,
  now: number,
): Promise<void> {
  const { record, version } = await readEnvironment(store, name);
  await commit(
    store,
    recordRollbackOps({ environment: name, envRecord: record, envVersion: version, to, now }),
  );
}

/** Every entry under a prefix, page by page. */
export async function listAll<TValue>(store: StateStore, prefix: string): Promise<StateEntry<TValue>[]> {
  const all: StateEntry<TValue>[] = [];
  for (let after: string | undefined; ;) {
    const page = await store.list<TValue>({ prefix, limit: 500, ...(after === undefined ? {} : { after }) });
    all.push(...page);
    if (page.length < 500) return all;
    after = page[page.length - 1]!.key;
  }
}
