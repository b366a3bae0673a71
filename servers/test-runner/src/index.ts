import { realpathSync } from 'node:fs';
import path from 'node:path';
import { createServer, packageVersion, type AnyTool, type KeelServer, type PathJail } from '@keel/kit';
import type { ConfiguredProject } from './projects/detect.js';
import type { RunnerDeps } from './runs/execute.js';
import { createFileRunStore } from './runs/store.js';
import { classifyFlakyTool } from './tools/classifyFlaky.js';
import { detectProjectsTool } from './tools/detectProjects.js';
import { getRunTool } from './tools/getRun.js';
import { listTestsTool } from './tools/listTests.js';
import { rerunFailedTool } from './tools/rerunFailed.js';
import { runTestsTool } from './tools/runTests.js';

export interface TestRunnerOptions {
  /** The state directory; runs and the cache live in `<stateDir>/test-runner/`. */
  stateDir: string;
  /** The environment children draw their allowlisted variables from (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** Projects a person declared in a config file, with optional launchers. */
  projects?: readonly ConfiguredProject[];
  /** The node binary for JS frameworks (default: the one running the server). */
  nodePath?: string;
  /** Bytes of stdout and of stderr kept per run, head + tail (default 256 KiB). */
  captureBytes?: number;
  /** Runs kept in the store before the oldest are pruned (default 200). */
  maxRuns?: number;
}

/**
 * The test-runner tools: detect_projects, list_tests, run_tests, get_run, rerun_failed and
 * classify_flaky, sharing one run store. Commands come only from the server's framework templates
 * or the configured projects, never from tool arguments.
 */
export function createTestRunnerTools(options: TestRunnerOptions): AnyTool[] {
  const deps: RunnerDeps = {
    store: createFileRunStore(
      path.join(options.stateDir, 'test-runner'),
      options.maxRuns === undefined ? {} : { maxRuns: options.maxRuns },
    ),
    env: options.env ?? process.env,
    nodePath: options.nodePath ?? process.execPath,
    configured: options.projects ?? [],
    captureBytes: options.captureBytes ?? 256 * 1024,
    excludeFromHash: [realOrResolved(options.stateDir)],
  };
  return [
    detectProjectsTool(deps),
    listTestsTool(deps),
    runTestsTool(deps),
    getRunTool(deps),
    rerunFailedTool(deps),
    classifyFlakyTool(deps),
  ];
}

function realOrResolved(dir: string): string {
  try {
    return realpathSync(dir);
  } catch {
    return path.resolve(dir);
  }
}

/** A test-runner server for library use (the bin builds the same tools through the kit's CLI). */
export function createTestRunnerServer(options: TestRunnerOptions & { jail: PathJail }): KeelServer {
  return createServer({
    name: 'keel-test-runner',
    version: packageVersion(new URL('../package.json', import.meta.url)),
    tools: createTestRunnerTools(options),
    jail: options.jail,
  });
}

export type { ConfiguredProject } from './projects/detect.js';
export type { FrameworkName } from './frameworks/types.js';
export { frameworkNames } from './frameworks/types.js';
export { loadProjectsConfig } from './projects/config.js';
