import {
  createServer,
  packageVersion,
  type AnyTool,
  type KeelServer,
  type PathJail,
  type StateStore,
} from '@keel/kit';
import type { KeyObject } from 'node:crypto';
import type { DeployConfig } from './config/config.js';
import { Deployer } from './deploy/deployer.js';
import { applyDeployTool } from './tools/applyDeploy.js';
import { deployStatusTool } from './tools/deployStatus.js';
import { healthCheckTool } from './tools/healthCheck.js';
import { listEnvironmentsTool } from './tools/listEnvironments.js';
import { listReleasesTool } from './tools/listReleases.js';
import { planDeployTool } from './tools/planDeploy.js';
import { rollbackTool } from './tools/rollback.js';

export { defaultConfigNames, loadDeployConfig, parseDeployConfig } from './config/config.js';
export type { DeployConfig, EnvironmentConfig, HealthConfig } from './config/config.js';
export {
  APPROVAL_META_KEY,
  generateApprovalKeyPair,
  newNonce,
  parsePrivateKey,
  parsePublicKey,
  signApproval,
  verifyApproval,
} from '@keel/kit/approval';
export type { ApprovalPayload, ApprovalRejection, VerifiedApproval } from '@keel/kit/approval';
export { Deployer } from './deploy/deployer.js';
export { crashPointNames } from './deploy/crashPoints.js';
export type { CrashPointName } from './deploy/crashPoints.js';
export type { ApplyResult, PlanResult, RollbackResult } from './deploy/deployer.js';

export interface DeployServerOptions {
  config: DeployConfig;
  /** Where plans, releases, locks and used approval nonces are kept (`createSqliteStateStore(db, 'deploy')`). */
  store: StateStore;
  /** Public keys whose approval tokens are accepted; without any, environments that require approval cannot be deployed. */
  approvalKeys?: readonly KeyObject[];
  /** The clock (tests pass their own). */
  now?: () => number;
  /**
   * For chaos runs only: the named crash point (`crashPointNames`) at which this process kills itself
   * with SIGKILL. The bin takes it from KEEL_CRASH_AT; an unknown name is refused.
   */
  crashAt?: string;
}

/** The deploy tools for one deploy config, sharing one {@link Deployer}. */
export function createDeployServerTools(options: DeployServerOptions): AnyTool[] {
  const deployer = new Deployer({
    config: options.config,
    store: options.store,
    approvalKeys: options.approvalKeys ?? [],
    ...(options.now === undefined ? {} : { now: options.now }),
    ...(options.crashAt === undefined ? {} : { crashAt: options.crashAt }),
  });
  return [
    listEnvironmentsTool(deployer),
    planDeployTool(deployer),
    applyDeployTool(deployer),
    deployStatusTool(deployer),
    listReleasesTool(deployer),
    rollbackTool(deployer),
    healthCheckTool(deployer),
  ];
}

/** A deploy server for library use: the tools on the kit's pipeline. */
export function createDeployServer(
  options: DeployServerOptions & { jail: PathJail; name?: string; version?: string },
): KeelServer {
  return createServer({
    name: options.name ?? 'keel-deploy',
    version: options.version ?? packageVersion(new URL('../package.json', import.meta.url)),
    tools: createDeployServerTools(options),
    jail: options.jail,
  });
}
