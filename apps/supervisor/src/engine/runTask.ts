import { randomBytes } from 'node:crypto';
import { context as otelContext, type Tracer } from '@opentelemetry/api';
import type { TaskRunV1 } from '@keel/contracts';
import { KeelError } from '@keel/kit';
import { builtinPrompt } from '../agents/roles.js';
import type { LoadedConfig } from '../config/load.js';
import { agentRoles, defaultLimits, type AgentRole, type Limits } from '../config/schema.js';
import { systemClock, type Clock } from '../limits/budget.js';
import { connectServers, type CatalogTool, type ConnectedServer } from '../mcp/servers.js';
import { createModel } from '../models/index.js';
import type { Model } from '../models/model.js';
import type { TaskStore } from '../store/taskStore.js';
import type { TaskFile } from '../task/taskFile.js';
import { GenAi, startSpan, traceparentOf } from '../telemetry/spans.js';
import { orchestrate, type AgentSetup, type FlowResult } from './orchestrator.js';
import { TaskSession, type ProgressSink } from './session.js';
import type { Stop } from './stop.js';
import { readFileSync } from 'node:fs';
import path from 'node:path';

export interface RunTaskOptions {
  loaded: LoadedConfig;
  task: TaskFile;
  store: TaskStore;
  env: NodeJS.ProcessEnv;
  progress?: ProgressSink;
  clock?: Clock;
  tracer?: Tracer | undefined;
  /** Aborting it kills the task: in-flight calls are cancelled and the task ends `killed`. */
  kill?: AbortSignal;
  /** Models by config key, replacing what the config would build (tests, replay). */
  models?: Record<string, Model>;
  taskId?: string;
}

export interface TaskOutcome {
  run: TaskRunV1;
  flow: FlowResult;
}

/** `t-20261130-081502-3fa2c1`: sortable, unique enough for one store. */
export function newTaskId(now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `t-${stamp}-${randomBytes(3).toString('hex')}`;
}

/** Which tools each role sees: the config's allowlist per server, `*` for all of a server's. */
export function scopeFor(
  role: string,
  allow: Record<string, string[]>,
  servers: Map<string, ConnectedServer>,
): Map<string, CatalogTool> {
  const scope = new Map<string, CatalogTool>();
  for (const [serverName, names] of Object.entries(allow)) {
    const server = servers.get(serverName);
    if (server === undefined) continue;
    const wanted = names.includes('*') ? server.tools.map((t) => t.name) : names;
    for (const name of wanted) {
      const tool = server.tools.find((t) => t.name === name);
      if (tool === undefined)
        throw new KeelError(
          'INVALID_ARGUMENT',
          `agents.${role}.tools.${serverName}: the server has no tool '${name}'`,
          {
            hint: `its tools: ${server.tools.map((t) => t.name).join(', ')}`,
          },
        );
      const clash = scope.get(name);
      if (clash !== undefined)
        throw new KeelError(
          'INVALID_ARGUMENT',
          `agents.${role}.tools: '${name}' is offered by both ${clash.server} and ${serverName}`,
          {
            hint: 'allow it from one server only',
          },
        );
      scope.set(name, tool);
    }
  }
  return scope;
}

/** What a replay starts from: the repository, the servers and the config as they were. */
async function startingState(
  servers: Map<string, ConnectedServer>,
  loaded: LoadedConfig,
  meta: Record<string, unknown>,
) {
  const state: Record<string, unknown> = {
    configHash: loaded.hash,
    servers: Object.fromEntries(
      [...servers.values()].map((s) => [s.name, { version: s.version, toolListHash: s.toolListHash }]),
    ),
  };
  const git = [...servers.values()].find((s) => s.tools.some((t) => t.name === 'git_status'));
  if (git !== undefined) {
    const status = await git.call(
      'git_status',
      { limit: 1000 },
      { signal: AbortSignal.timeout(60_000), timeoutMs: 60_000, meta },
    );
    const s = status.structured as
      | {
          branch: { head: string | null; oid: string | null };
          staged: Array<{ path: string }>;
          unstaged: Array<{ path: string }>;
          untracked: string[];
        }
      | undefined;
    state['git'] =
      status.isError || s === undefined
        ? { error: status.error?.message ?? status.text }
        : {
            head: s.branch.oid,
            branch: s.branch.head,
            dirty: [...s.staged, ...s.unstaged].map((c) => c.path),
            untracked: s.untracked,
          };
  }
  return state;
}

/** Environments whose policy requires approval, read from the deploy server; undefined when it cannot say. */
async function approvalEnvironments(
  servers: Map<string, ConnectedServer>,
  meta: Record<string, unknown>,
): Promise<Set<string> | undefined> {
  const deploy = [...servers.values()].find((s) => s.tools.some((t) => t.name === 'list_environments'));
  if (deploy === undefined) return undefined;
  const listed = await deploy.call(
    'list_environments',
    {},
    { signal: AbortSignal.timeout(30_000), timeoutMs: 30_000, meta },
  );
  const environments = listed.structured?.['environments'];
  if (listed.isError || !Array.isArray(environments)) return undefined;
  const result = new Set<string>();
  for (const env of environments as Array<Record<string, unknown>>) {
    const policy = (env['policy'] ?? {}) as Record<string, unknown>;
    if (env['requiresApproval'] === true || policy['requiresApproval'] === true)
      result.add(String(env['name']));
  }
  return result;
}

function systemPrompt(loaded: LoadedConfig, role: AgentRole | 'single', file: string | undefined): string {
  if (file === undefined) return builtinPrompt(role);
  return readFileSync(path.resolve(loaded.dir, file), 'utf8');
}

/**
 * Runs one task end to end: connects the servers its agents need, records the starting state,
 * runs the flow in a session, and writes the taskRun.v1 record. Always closes the servers.
 */
export async function runTask(options: RunTaskOptions): Promise<TaskOutcome> {
  const { loaded, task, store } = options;
  const config = loaded.config;
  const clock = options.clock ?? systemClock;
  const limits = mergeLimits(defaultLimits, config.limits, task.limits);
  const taskId = options.taskId ?? newTaskId();
  const createdAt = new Date(clock.now()).toISOString();
  const models = new Map<string, Model>();
  const modelFor = (name: string) => {
    let model = models.get(name) ?? options.models?.[name];
    if (model === undefined) {
      model = createModel(name, config.models[name]!, { env: options.env, playbook: task.playbook });
      models.set(name, model);
    }
    return model;
  };
  const roleList: AgentRole[] =
    task.mode === 'single' ? ['coding'] : agentRoles.filter((r) => r !== 'deploy' || task.deploy !== null);
  if (task.mode === 'single' && task.deploy !== null) roleList.push('deploy');
  for (const role of roleList) {
    const agent = config.agents[role];
    if (agent === undefined)
      throw new KeelError(
        'INVALID_ARGUMENT',
        `the task needs a ${role} agent, and keel.config.yaml has none`,
        {
          hint: `add agents.${role}, or set deploy: null in the task file`,
        },
      );
    modelFor(agent.model);
  }
  const wanted = new Set<string>();
  for (const role of roleList)
    for (const server of Object.keys(config.agents[role]!.tools)) wanted.add(server);
  for (const [name, server] of Object.entries(config.servers))
    if ('builtin' in server && server.builtin === 'test-runner' && task.tests !== null) wanted.add(name);
  if (task.mode === 'single') for (const name of Object.keys(config.servers)) wanted.add(name);

  const servers = await connectServers(config.servers, {
    workspace: loaded.workspace,
    stateDir: loaded.stateDir,
    env: options.env,
    only: wanted,
  });
  const tracer = options.tracer;
  const rootSpan =
    tracer === undefined
      ? undefined
      : startSpan(tracer, 'invoke_agent orchestrator', otelContext.active(), {
          [GenAi.operation]: 'invoke_agent',
          [GenAi.agentName]: 'orchestrator',
          [GenAi.conversationId]: taskId,
          'keel.task.id': taskId,
          'keel.task.type': task.type,
        });
  let session: TaskSession | undefined;
  const flow: FlowResult = { reviews: [], tests: [] };
  try {
    const agents: Partial<Record<AgentRole | 'single', AgentSetup>> = {};
    for (const role of roleList) {
      const agent = config.agents[role]!;
      const allow =
        task.mode === 'single' && role === 'coding'
          ? Object.fromEntries(
              [...servers.keys()]
                .filter((s) => !servers.get(s)!.tools.some((t) => t.name === 'list_environments'))
                .map((s) => [s, ['*']]),
            )
          : agent.tools;
      const key = task.mode === 'single' && role === 'coding' ? 'single' : role;
      agents[key] = {
        config: agent,
        model: modelFor(agent.model),
        price: config.prices[modelFor(agent.model).model],
        scope: scopeFor(role, allow, servers),
        system: systemPrompt(loaded, key, agent.prompt),
      };
    }
    const testServer = [...servers.values()].find((s) => s.tools.some((t) => t.name === 'run_tests'));
    const testRunner =
      testServer === undefined
        ? undefined
        : { scope: scopeFor('orchestrator', { [testServer.name]: ['run_tests'] }, servers) };
    const traceparent = rootSpan === undefined ? undefined : traceparentOf(rootSpan.ctx);
    const meta = traceparent === undefined ? {} : { traceparent };
    const start = await startingState(servers, loaded, meta);
    await store.createTask({
      id: taskId,
      type: task.type,
      title: task.title,
      mode: task.mode,
      status: 'running',
      createdAt,
      endedAt: null,
      configHash: loaded.hash,
      spec: task,
      startingState: start,
      run: null,
    });
    await store.appendEvent(taskId, 'task_started', {
      type: task.type,
      mode: task.mode,
      limits,
      startingState: start,
    });
    session = new TaskSession({
      taskId,
      store,
      servers,
      workspace: loaded.workspace,
      limits,
      loops: config.loops,
      sideEffects: config.sideEffects,
      extraIrreversible: config.irreversible.tools,
      approvalEnvironments: await approvalEnvironments(servers, meta),
      tracer,
      rootContext: rootSpan?.ctx ?? otelContext.active(),
      clock,
      progress: options.progress ?? (() => {}),
      kill: options.kill ?? new AbortController().signal,
    });
    let stop: Stop | undefined;
    let end: { status: 'succeeded' | 'failed'; message: string } | undefined;
    try {
      const result = await orchestrate(session, task, agents, testRunner, flow);
      if (result.ok) end = result.value;
      else stop = result.stop;
    } catch (error) {
      stop = { status: 'error', message: (error as Error).message };
    }
    const status = end?.status ?? stop!.status;
    const run: TaskRunV1 = {
      version: 'taskRun.v1',
      id: taskId,
      type: task.type,
      mode: task.mode,
      startedAt: createdAt,
      endedAt: new Date(clock.now()).toISOString(),
      status,
      outcome: {
        message: end?.message ?? stop!.message,
        ...(stop?.limit === undefined ? {} : { limit: stop.limit }),
        ...(stop?.overshoot === undefined ? {} : { overshoot: stop.overshoot }),
        ...(stop?.loop === undefined ? {} : { loop: stop.loop }),
      },
      steps: session.step,
      tokens: { input: session.budget.used.inputTokens, output: session.budget.used.outputTokens },
      costUsd: session.budget.used.costUsd,
      approvalsAsked: 0,
      toolCalls: session.toolCalls,
      ...(status === 'error' ? { error: { code: 'TASK_ERROR', message: stop!.message } } : {}),
    };
    await store.appendEvent(taskId, 'task_finished', { status, outcome: run.outcome });
    await store.updateTask(taskId, { status, endedAt: run.endedAt, run });
    rootSpan?.span.setAttribute('keel.task.status', status);
    rootSpan?.end(status === 'succeeded' ? undefined : status);
    return { run, flow };
  } finally {
    session?.dispose();
    await Promise.all([...servers.values()].map((s) => s.close().catch(() => undefined)));
    if (rootSpan !== undefined && rootSpan.span.isRecording()) rootSpan.end('aborted');
  }
}

/** Later layers override earlier ones, field by field; an absent field keeps the earlier value. */
export function mergeLimits(
  base: Limits,
  ...layers: Array<{ [TKey in keyof Limits]?: number | undefined }>
): Limits {
  const merged = { ...base };
  for (const layer of layers)
    for (const [key, value] of Object.entries(layer))
      if (value !== undefined) (merged as Record<string, number>)[key] = value;
  return merged;
}
