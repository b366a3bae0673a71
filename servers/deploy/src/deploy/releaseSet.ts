import type { ToolContext } from '@keel/kit';
import type { EnvironmentConfig } from '../config/config.js';
import type { DeployContext } from './context.js';
import { keys, type ReleaseRecord } from './records.js';
import { listAll } from './state.js';

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

/** Releases on the target, newest first, with what the state knows of each. */
export async function releaseInfos(
  deps: DeployContext,
  name: string,
  current: string | null,
): Promise<ReleaseInfo[]> {
  const onDisk = await deps.target(name).releases();
  const records = new Map<string, ReleaseRecord>();
  for (const entry of await listAll<ReleaseRecord>(deps.store, keys.releases(name)))
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

/** Whether a release went live and stayed there: it passed its health check, or had none. */
function passed(info: ReleaseInfo): boolean {
  return info.status === 'live' && info.healthOk !== false;
}

/** The newest release before the live one that passed its health check: where `rollback` goes by default. */
export function rollbackDestination(infos: readonly ReleaseInfo[]): ReleaseInfo | undefined {
  const currentSeq = infos.find((info) => info.current)?.seq ?? Number.POSITIVE_INFINITY;
  return infos.find((info) => !info.current && passed(info) && (info.seq ?? 0) < currentSeq);
}

/**
 * Keeps the newest `keep` releases by sequence, and always the live one, the newest that passed its
 * health check and the one `rollback` would go back to: failed deploys filling the window must not
 * take the last good release with them.
 */
export async function prune(deps: DeployContext, env: EnvironmentConfig, ctx: ToolContext): Promise<void> {
  const target = deps.target(env.name);
  const current = await target.current(ctx);
  const infos = await releaseInfos(deps, env.name, current);
  const good = new Set([infos.find(passed)?.releaseId, rollbackDestination(infos)?.releaseId]);
  for (const info of infos.slice(env.policy.keep)) {
    if (info.current || good.has(info.releaseId)) continue;
    await target.remove(info.releaseId);
    await deps.store.delete(keys.release(env.name, info.releaseId));
  }
}
