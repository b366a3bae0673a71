import type { KeyObject } from 'node:crypto';
import { processStartTime, type Outcome, type StateStore, type ToolContext } from '@keel/kit';
import type { DeployConfig, EnvironmentConfig } from '../config/config.js';
import type { HealthResult } from '../health/healthCheck.js';
import { CommandTarget } from '../target/command.js';
import { DirectoryTarget } from '../target/directory.js';
import type { DeployTarget } from '../target/target.js';
import { applyPlan, type ApplyResult } from './apply.js';
import { environmentOf, type DeployContext } from './context.js';
import { createCrashPoint } from './crashPoints.js';
import { planDeploy, type PlanResult } from './planner.js';
import type { ReleaseInfo } from './releaseSet.js';
import { rollbackEnvironment, type RollbackResult } from './rollback.js';
import { checkHealth, environmentStatus, listReleases, type EnvironmentStatus } from './status.js';

export type { ApplyResult } from './apply.js';
export type { PlanResult } from './planner.js';
export type { ReleaseInfo } from './releaseSet.js';
export type { RollbackResult } from './rollback.js';
export type { EnvironmentStatus } from './status.js';

export interface DeployerOptions {
  config: DeployConfig;
  store: StateStore;
  /** Public keys whose approval tokens this server accepts. */
  approvalKeys: readonly KeyObject[];
  /** The bin name for the out-of-band approval command in hints. */
  bin?: string;
  now?: () => number;
  /** A chaos run's crash point (see `crashPoints.ts`): this process SIGKILLs itself there. */
  crashAt?: string;
}

/**
 * Plans, applies and rolls back deploys of the configured environments. All durable bookkeeping
 * (plans, releases, the lock, the in-flight attempt, used approval nonces) lives in the state store;
 * what is live is read from the target itself, so a lost state never misreports it. Each operation
 * is its own module (planner, apply, rollback, reconcile, approval, release set) over one
 * {@link DeployContext}; the apply phases are one table (`phases.ts`).
 */
export class Deployer {
  readonly config: DeployConfig;
  readonly #deps: DeployContext;

  constructor(options: DeployerOptions) {
    this.config = options.config;
    const targets = new Map<string, DeployTarget>();
    for (const env of options.config.environments.values()) {
      targets.set(
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
    this.#deps = {
      config: options.config,
      store: options.store,
      approvalKeys: options.approvalKeys,
      now: options.now ?? Date.now,
      bin: options.bin ?? 'keel-deploy',
      startTime: processStartTime(),
      target: (name) => targets.get(name)!,
      crash: createCrashPoint(options.crashAt),
    };
  }

  environment(name: string): Outcome<EnvironmentConfig> {
    return environmentOf(this.#deps, name);
  }

  target(name: string): DeployTarget {
    return this.#deps.target(name);
  }

  plan(name: string, ctx: ToolContext): Promise<Outcome<PlanResult>> {
    return planDeploy(this.#deps, name, ctx);
  }

  apply(planId: string, ctx: ToolContext): Promise<Outcome<ApplyResult>> {
    return applyPlan(this.#deps, planId, ctx);
  }

  rollback(name: string, to: string | undefined, ctx: ToolContext): Promise<Outcome<RollbackResult>> {
    return rollbackEnvironment(this.#deps, name, to, ctx);
  }

  status(name: string, ctx: ToolContext): Promise<Outcome<EnvironmentStatus>> {
    return environmentStatus(this.#deps, name, ctx);
  }

  health(
    name: string,
    ctx: ToolContext,
  ): Promise<Outcome<{ current: string | null; health: HealthResult | null }>> {
    return checkHealth(this.#deps, name, ctx);
  }

  releases(
    name: string,
    ctx: ToolContext,
  ): Promise<Outcome<{ current: string | null; releases: ReleaseInfo[] }>> {
    return listReleases(this.#deps, name, ctx);
  }
}
