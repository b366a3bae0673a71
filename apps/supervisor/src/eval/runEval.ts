import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import picomatch from 'picomatch';
import { stringify } from 'yaml';
import { KeelError } from '@keel/kit/core';
import { loadConfig } from '../config/load.js';
import { runTask } from '../engine/runTask.js';
import type { ProgressSink } from '../engine/session.js';
import { createSqliteTaskStore } from '../store/sqliteTaskStore.js';
import type { TaskStore } from '../store/taskStore.js';
import { loadTaskFile } from '../task/taskFile.js';
import { computeEvalReport, type EvalReport, type EvalRun } from './report.js';
import type { EvalConfiguration, EvalTask, LoadedSuite } from './suite.js';

/** A local model endpoint a suite starts for each run (the sample's seeded, fallible model). */
export interface ChatServerModule {
  startChatServer(options: {
    seed: number;
    [option: string]: unknown;
  }): Promise<{ url: string; close(): Promise<void> }>;
}

export interface RunEvalOptions {
  loaded: LoadedSuite;
  /** Where the runs' copies, the eval's task store and the reports go; must not hold an eval yet. */
  out: string;
  env: NodeJS.ProcessEnv;
  /** Overrides the suite's seed and repeat count. */
  seed?: number;
  repeat?: number;
  /** One line per finished run. */
  onRun?: (run: EvalRun, index: number, total: number) => void;
  progress?: ProgressSink;
}

const agentTools = {
  planning: {
    filesystem: ['read_file', 'read_files', 'list_directory', 'tree', 'find_files', 'search_text', 'stat'],
    git: ['git_status', 'git_log', 'git_diff', 'git_show'],
  },
  coding: {
    filesystem: [
      'read_file',
      'read_files',
      'list_directory',
      'tree',
      'find_files',
      'search_text',
      'stat',
      'write_file',
      'edit_file',
      'apply_patch',
      'create_directory',
    ],
    git: ['git_status', 'git_diff', 'git_log', 'git_show', 'git_add', 'git_commit'],
    tests: ['run_tests', 'get_run', 'list_tests'],
  },
  review: {
    filesystem: ['read_file', 'read_files', 'search_text'],
    git: ['git_status', 'git_diff', 'git_log', 'git_show'],
  },
  deploy: {
    deploy: [
      'list_environments',
      'plan_deploy',
      'apply_deploy',
      'deploy_status',
      'list_releases',
      'health_check',
    ],
  },
};

/** A run's seed: the suite's seed, the task, the configuration and the repetition, hashed. */
export function runSeed(seed: number, task: string, configuration: string, repetition: number): number {
  return createHash('sha256')
    .update(`${seed}\n${task}\n${configuration}\n${repetition}`)
    .digest()
    .readUInt32BE(0);
}

const git = (cwd: string, args: string[]) =>
  execFileSync('git', args, {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    // Fixed identity and dates: the same repository gives the same starting commit every run.
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: 'keel eval',
      GIT_AUTHOR_EMAIL: 'eval@keel.invalid',
      GIT_COMMITTER_NAME: 'keel eval',
      GIT_COMMITTER_EMAIL: 'eval@keel.invalid',
      GIT_AUTHOR_DATE: '2026-01-01T00:00:00Z',
      GIT_COMMITTER_DATE: '2026-01-01T00:00:00Z',
    },
  }).trim();

/** A fresh copy of the task's repository, committed if it was not a git repository; its HEAD. */
function freshCopy(repo: string, target: string): string {
  cpSync(repo, target, { recursive: true });
  if (!existsSync(path.join(target, '.git'))) {
    git(target, ['init', '--quiet', '--initial-branch=main']);
    git(target, ['config', 'user.name', 'keel eval']);
    git(target, ['config', 'user.email', 'eval@keel.invalid']);
    git(target, ['config', 'commit.gpgsign', 'false']);
    git(target, ['add', '--all']);
    git(target, ['commit', '--quiet', '-m', 'the task repository']);
  }
  return git(target, ['rev-parse', 'HEAD']);
}

const substitute = (value: unknown, chat: string | undefined): unknown => {
  if (typeof value === 'string') return chat === undefined ? value : value.replaceAll('{{chat}}', chat);
  if (Array.isArray(value)) return value.map((v) => substitute(v, chat));
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, chat)]));
  return value;
};

function runCommand(command: string[], cwd: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(
      command[0]!,
      command.slice(1),
      { cwd, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (error) => resolve(error === null),
    );
  });
}

/** The paths changed, added or deleted since `base` (committed or not). */
function touchedPaths(project: string, base: string): string[] {
  const changed = git(project, ['diff', '--name-only', base]).split('\n');
  const untracked = git(project, ['ls-files', '--others', '--exclude-standard']).split('\n');
  return [...new Set([...changed, ...untracked].filter(Boolean))].sort();
}

async function runOne(options: {
  suite: LoadedSuite;
  task: EvalTask;
  configuration: EvalConfiguration;
  repetition: number;
  seed: number;
  out: string;
  store: TaskStore;
  env: NodeJS.ProcessEnv;
  chatModule: ChatServerModule | undefined;
  progress: ProgressSink | undefined;
}): Promise<EvalRun> {
  const { suite, task, configuration: c } = options;
  const name = `${task.name}-${c.name}-${options.repetition}`;
  const dir = path.join(options.out, 'runs', name);
  const project = path.join(dir, 'project');
  mkdirSync(dir, { recursive: true });
  const base = freshCopy(path.resolve(suite.dir, task.repo), project);
  const seed = runSeed(options.seed, task.name, c.name, options.repetition);
  const chat =
    options.chatModule === undefined
      ? undefined
      : await options.chatModule.startChatServer({ ...suite.suite.chatServerOptions, seed });
  try {
    const taskFile = loadTaskFile(path.resolve(suite.dir, task.task));
    const withDeploy = taskFile.deploy !== null;
    const config = {
      version: 1,
      workspace: 'project',
      stateDir: 'state',
      servers: {
        filesystem: { builtin: 'filesystem', args: ['--root', '.'] },
        git: { builtin: 'git', args: ['--root', '.'] },
        tests: { builtin: 'test-runner', args: ['--root', '.'] },
        ...(withDeploy ? { deploy: { builtin: 'deploy', args: ['--root', '.'] } } : {}),
      },
      models: { [c.model]: substitute(suite.suite.models[c.model], chat?.url) },
      prices: suite.suite.prices,
      agents: Object.fromEntries(
        Object.entries(agentTools)
          .filter(([role]) => role !== 'deploy' || withDeploy)
          .map(([role, tools]) => [role, { model: c.model, tools }]),
      ),
      limits: c.limits,
      sideEffects: { protectedPaths: [], ...c.sideEffects },
    };
    writeFileSync(path.join(dir, 'keel.config.yaml'), stringify(config));
    const loaded = loadConfig(path.join(dir, 'keel.config.yaml'));
    const taskId = `e-${name}`;
    const { run, flow } = await runTask({
      loaded: { ...loaded, stateDir: path.join(dir, 'state') },
      task: { ...taskFile, mode: c.mode },
      store: options.store,
      env: { ...options.env, KEEL_STATE_DIR: path.join(dir, 'state', 'servers') },
      taskId,
      ...(options.progress === undefined ? {} : { progress: options.progress }),
    });
    const checks: EvalRun['checks'] = {};
    if (task.checks.tests !== undefined)
      checks['tests'] = await runCommand(task.checks.tests.command, project, task.checks.tests.timeoutMs);
    if (task.checks.allowedPaths !== undefined) {
      const allowed = picomatch(task.checks.allowedPaths, { dot: true });
      checks['allowedPaths'] = touchedPaths(project, base).every((p) => allowed(p));
    }
    // Single mode has no reviewer: the review check applies to orchestrated runs only.
    if (task.checks.review !== undefined && c.mode === 'orchestrated')
      checks['review'] = flow.reviews.at(-1)?.verdict === task.checks.review;
    if (task.checks.deploy !== undefined)
      checks['deploy'] = flow.deploys.length > 0 && flow.deploys.every((d) => d.status === 'live');
    return {
      task: task.name,
      configuration: c.name,
      repetition: options.repetition,
      seed,
      taskId,
      status: run.status,
      ...(run.outcome.limit === undefined ? {} : { limit: run.outcome.limit }),
      checks,
      passed: run.status === 'succeeded' && Object.values(checks).every(Boolean),
    };
  } finally {
    await chat?.close();
  }
}

/**
 * Runs every task under every configuration `repeat` times, each on a fresh copy of the task's
 * repository with a fresh state dir, all recorded in one task store in `out`; then computes the
 * report from that store.
 */
export async function runEval(options: RunEvalOptions): Promise<EvalReport> {
  const { suite } = options.loaded;
  const out = path.resolve(options.out);
  if (existsSync(path.join(out, 'state', 'tasks.db')))
    throw new KeelError('ALREADY_EXISTS', `${out} already holds an eval`, {
      hint: 'pick another --out, or delete it',
    });
  mkdirSync(out, { recursive: true });
  const seed = options.seed ?? suite.seed;
  const repeat = options.repeat ?? suite.repeat;
  const chatModule =
    suite.chatServer === undefined
      ? undefined
      : ((await import(
          pathToFileURL(path.resolve(options.loaded.dir, suite.chatServer)).href
        )) as ChatServerModule);
  const store = createSqliteTaskStore(path.join(out, 'state'));
  try {
    const runs: EvalRun[] = [];
    const total = suite.tasks.length * suite.configurations.length * repeat;
    for (const task of suite.tasks)
      for (const configuration of suite.configurations)
        for (let repetition = 1; repetition <= repeat; repetition++) {
          const run = await runOne({
            suite: options.loaded,
            task,
            configuration,
            repetition,
            seed,
            out,
            store,
            env: options.env,
            chatModule,
            progress: options.progress,
          });
          runs.push(run);
          options.onRun?.(run, runs.length, total);
        }
    return await computeEvalReport({ suite: suite.name, seed, repeat, runs, store });
  } finally {
    await store.close();
  }
}
