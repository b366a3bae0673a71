import type { HealthResult } from '../health/healthCheck.js';
import type { PreparedRelease } from '../target/directory.js';

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
  nonce: (nonce: string) => `nonce/${nonce}`,
};

export const emptyEnvironment: EnvironmentRecord = { generation: 0, current: null, nextSeq: 1, last: null };
