import type { HealthResult } from '../health/healthCheck.js';
import type { PreparedRelease } from '../target/target.js';

/** A plan as `plan_deploy` stored it (`plan/<planId>`): enough to check, at apply, that nothing moved. */
export interface PlanRecord {
  planId: string;
  planHash: string;
  environment: string;
  releaseId: string;
  buildHash: string;
  configHash: string;
  baseRelease: string | null;
  /** The environment's generation when planned; any release or rollback since makes the plan stale. */
  generation: number;
  createdAt: number;
  /** What the plan changes, for the question a person is asked before applying it. */
  summary?: { added: number; changed: number; removed: number; unchanged: number; bytes: number };
  /** What the build warns about (symlinks allowed out of it), shown to the person who approves. */
  warnings?: string[];
}

/** An environment's history counters (`env/<name>`). */
export interface EnvironmentRecord {
  /** Grows by one with every apply and every rollback that switched. */
  generation: number;
  current: string | null;
  /** The sequence number the next release gets. */
  nextSeq: number;
  last: LastAction | null;
}

export interface LastAction {
  operation: 'apply' | 'rollback';
  releaseId: string | null;
  planId: string | null;
  status: 'live' | 'rolled_back';
  at: number;
  approvedBy: string | null;
}

/** One release's outcome (`release/<env>/<releaseId>`). */
export interface ReleaseRecord {
  releaseId: string;
  environment: string;
  planId: string;
  planHash: string;
  seq: number;
  createdAt: number;
  status: 'live' | 'rolled_back';
  health: HealthResult | null;
  approvedBy: string | null;
  files: PreparedRelease;
  baseRelease: string | null;
  /** The environment's generation right after this apply, to tell a replay from a stale plan. */
  generation: number;
}

/** A deploy or rollback under way (`attempt/<env>`): what reconciliation reads after a crash. */
export type AttemptRecord =
  | {
      operation: 'apply';
      planId: string;
      planHash: string;
      releaseId: string;
      baseRelease: string | null;
      generation: number;
      phase: 'copying' | 'switching' | 'checking' | 'rolling_back';
      startedAt: number;
      approvedBy: string | null;
      nonce: string | null;
      files?: PreparedRelease;
      health?: HealthResult;
    }
  | {
      operation: 'rollback';
      from: string | null;
      to: string;
      generation: number;
      phase: 'switching';
      startedAt: number;
    };

export const keys = {
  plan: (planId: string) => `plan/${planId}`,
  environment: (name: string) => `env/${name}`,
  release: (environment: string, releaseId: string) => `release/${environment}/${releaseId}`,
  releases: (environment: string) => `release/${environment}/`,
  attempt: (environment: string) => `attempt/${environment}`,
  lock: (environment: string) => `lock/${environment}`,
  manifest: (environment: string, releaseId: string) => `manifest/${environment}/${releaseId}`,
  nonce: (nonce: string) => `nonce/${nonce}`,
};

export const emptyEnvironment: EnvironmentRecord = { generation: 0, current: null, nextSeq: 1, last: null };

/**
 * The writes that record a finished apply: its release, the environment's new generation and live
 * release, the attempt gone. One commit, so a crash leaves either the attempt or the record.
 */
export function recordApplyOps(options: {
  attempt: AttemptRecord & { operation: 'apply' };
  environment: string;
  envRecord: EnvironmentRecord;
  envVersion: number;
  status: ReleaseRecord['status'];
  health: ReleaseRecord['health'];
  files: PreparedRelease;
  now: number;
}): {
  release: ReleaseRecord;
  ops: Array<
    { kind: 'put'; key: string; value: unknown; ifVersion?: number } | { kind: 'delete'; key: string }
  >;
} {
  const { attempt, environment, envRecord, status, now } = options;
  const release: ReleaseRecord = {
    releaseId: attempt.releaseId,
    environment,
    planId: attempt.planId,
    planHash: attempt.planHash,
    seq: envRecord.nextSeq,
    createdAt: now,
    status,
    health: options.health,
    approvedBy: attempt.approvedBy,
    files: options.files,
    baseRelease: attempt.baseRelease,
    generation: envRecord.generation + 1,
  };
  const next: EnvironmentRecord = {
    generation: envRecord.generation + 1,
    current: status === 'live' ? attempt.releaseId : attempt.baseRelease,
    nextSeq: envRecord.nextSeq + 1,
    last: {
      operation: 'apply',
      releaseId: attempt.releaseId,
      planId: attempt.planId,
      status,
      at: now,
      approvedBy: attempt.approvedBy,
    },
  };
  return {
    release,
    ops: [
      { kind: 'put', key: keys.release(environment, release.releaseId), value: release, ifVersion: 0 },
      { kind: 'put', key: keys.environment(environment), value: next, ifVersion: options.envVersion },
      { kind: 'delete', key: keys.attempt(environment) },
    ],
  };
}

/**
 * The writes that drop an apply that never went live: its attempt, the manifest kept for it and the
 * approval it spent, which a drop gives back (an approval is spent only by the switch it allowed).
 */
export function dropApplyOps(
  environment: string,
  attempt: AttemptRecord & { operation: 'apply' },
): Array<{ kind: 'delete'; key: string }> {
  const ops = [
    { kind: 'delete' as const, key: keys.attempt(environment) },
    { kind: 'delete' as const, key: keys.manifest(environment, attempt.releaseId) },
  ];
  if (attempt.nonce !== null) ops.push({ kind: 'delete', key: keys.nonce(attempt.nonce) });
  return ops;
}

/** The writes that record a finished rollback. */
export function recordRollbackOps(options: {
  environment: string;
  envRecord: EnvironmentRecord;
  envVersion: number;
  to: string;
  now: number;
}): Array<
  { kind: 'put'; key: string; value: unknown; ifVersion?: number } | { kind: 'delete'; key: string }
> {
  const next: EnvironmentRecord = {
    ...options.envRecord,
    generation: options.envRecord.generation + 1,
    current: options.to,
    last: {
      operation: 'rollback',
      releaseId: options.to,
      planId: null,
      status: 'live',
      at: options.now,
      approvedBy: null,
    },
  };
  return [
    { kind: 'put', key: keys.environment(options.environment), value: next, ifVersion: options.envVersion },
    { kind: 'delete', key: keys.attempt(options.environment) },
  ];
}
