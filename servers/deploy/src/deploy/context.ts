import type { KeyObject } from 'node:crypto';
import { fail, KeelError, ok, type Outcome, type StateStore } from '@keel/kit';
import type { DeployConfig, EnvironmentConfig } from '../config/config.js';
import type { DeployTarget } from '../target/target.js';
import type { CrashPoint } from './crashPoints.js';
import type { LockHolder } from './lock.js';

/**
 * What every step of a deploy reads: the config, the state store, the trusted approval keys, the
 * clock and each environment's target. One per server, built by the {@link Deployer}.
 */
export interface DeployContext {
  readonly config: DeployConfig;
  readonly store: StateStore;
  /** Public keys whose approval tokens this server accepts. */
  readonly approvalKeys: readonly KeyObject[];
  readonly now: () => number;
  /** The bin name for the out-of-band approval command in hints. */
  readonly bin: string;
  /** When this process started, recorded with the lock it holds (its owner is the call's `ctx.owner`). */
  readonly startTime: string | undefined;
  target(environment: string): DeployTarget;
  /** Kills this process at the crash point a chaos run named; a no-op otherwise. */
  readonly crash: CrashPoint;
}

export function environmentOf(deps: DeployContext, name: string): Outcome<EnvironmentConfig> {
  const env = deps.config.environments.get(name);
  if (env !== undefined) return ok(env);
  return fail('NOT_FOUND', `environment '${name}' is not in the deploy config`, {
    hint: `Configured environments: ${[...deps.config.environments.keys()].join(', ')}.`,
  });
}

export function unknownState(environment: string, what: string): KeelError {
  return new KeelError('UNKNOWN_STATE', `'${environment}': ${what}`, {
    hint: `Check by hand which release is live on the target, then record it: keel-deploy resolve ${environment} --live <releaseId|none> (with the server's --state-dir).`,
  });
}

export function inProgress(environment: string, holder: LockHolder) {
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

/** A refusal as the steps pass it around: the failed half of an {@link Outcome}. */
export type Refusal = Extract<Outcome<never>, { ok: false }>;
