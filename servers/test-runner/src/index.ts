import { realpathSync } from 'node:fs';
import path from 'node:path';
import {
  createSandbox,
  createServer,
  createSqliteStateStore,
  openStateDatabase,
  packageVersion,
  toolSet,
  type KeelServer,
  type PathJail,
  type Sandbox,
  type StateStore,
  type ToolSet,
} from '@keel/kit';
import type { Project } from './frameworks/types.js';
import type { ConfiguredProject } from './projects/detect.js';
import { testRunnerPrepare } from './projects/prepare.js';
import type { RunnerDeps } from './runs/execute.js';
import { createRunStore } from './runs/store.js';
import { classifyFlakyTool } from './tools/classifyFlaky.js';
import { detectProjectsTool } from './tools/detectProjects.js';
import { getRunTool } from './tools/getRun.js';
import { listTestsTool } from './tools/listTests.js';
import { rerunFailedTool } from './tools/rerunFailed.js';
import { runTestsTool } from './tools/runTests.js';

export interface TestRunnerOptions {
  /**
   * Where runs, their outcomes and the cache index are kept. The bin passes the kit's
   * `stateStore('test-runner')`, so server processes sharing a state database see each other's runs.
   */
  store: StateStore;
  /** The server's state directory, left out of the inputs hash when it lies inside a root. */
  stateDir?: string;
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
  /**
   * Where every command runs (tests, listings, probes, the git that hashes the tree). Default:
   * bubblewrap when it works here, else unsandboxed and marked so, with the state dir hidden.
   */
  sandbox?: Sandbox;
}

/**
 * The test-runner tools: detect_projects, list_tests, run_tests, get_run, rerun_failed and
 * classify_flaky, sharing one run store, with the prepare step that resolves each call's project.
 * Commands come only from the server's framework templates or the configured projects, never from
 * tool arguments.
 */
export function createTestRunnerTools(options: TestRunnerOptions): ToolSet<Project> {
  const deps: RunnerDeps = {
    store: createRunStore(options.store, options.maxRuns === undefined ? {} : { maxRuns: options.maxRuns }),
    env: options.env ?? process.env,
    nodePath: options.nodePath ?? process.execPath,
    configured: options.projects ?? [],
    captureBytes: options.captureBytes ?? 256 * 1024,
    excludeFromHash: options.stateDir === undefined ? [] : [realOrResolved(options.stateDir)],
    sandbox:
      options.sandbox ??
      createSandbox({
        mode: 'auto',
        env: options.env ?? process.env,
        hidden: options.stateDir === undefined ? [] : [realOrResolved(options.stateDir)],
      }),
  };
  const tools = [
    detectProjectsTool(deps),
    listTestsTool(deps),
    runTestsTool(deps),
    getRunTool(deps),
    rerunFailedTool(deps),
    classifyFlakyTool(deps),
  ];
  return toolSet({ tools, prepare: testRunnerPrepare(deps) });
}

function realOrResolved(dir: string): string {
  try {
    return realpathSync(dir);
  } catch {
    return path.resolve(dir);
  }
}

/**
 * A test-runner server for library use (the bin builds the same tools through the kit's CLI). Runs go
 * to `store` when given; otherwise to the state database in `stateDir`, which `close()` releases.
 */
export function createTestRunnerServer(
  options: Omit<TestRunnerOptions, 'store'> & { jail: PathJail; store?: StateStore },
): KeelServer {
  const { store, ...rest } = options;
  let owned: { close(): void } | undefined;
  let runs = store;
  if (runs === undefined) {
    if (options.stateDir === undefined)
      throw new TypeError('createTestRunnerServer needs a store or a stateDir to keep runs in');
    const state = openStateDatabase(options.stateDir);
    owned = state;
    runs = createSqliteStateStore(state.db, 'test-runner');
  }
  const server = createServer({
    name: 'keel-test-runner',
    version: packageVersion(new URL('../package.json', import.meta.url)),
    ...createTestRunnerTools({ ...rest, store: runs }),
    jail: options.jail,
  });
  return {
    ...server,
    async close(closeOptions) {
      await server.close(closeOptions);
      owned?.close();
    },
  };
}

export type { ConfiguredProject } from './projects/detect.js';
export type { FrameworkName } from './frameworks/types.js';
export { frameworkNames } from './frameworks/types.js';
export { loadProjectsConfig } from './projects/config.js';
export { commandFormats } from './frameworks/command.js';
export type { CommandFormat, CommandSpec } from './frameworks/command.js';
