import { context as otelContext, type Tracer } from '@opentelemetry/api';
import type { TaskRunV1 } from '@keel/contracts';
import { KeelError } from '@keel/kit/core';
import { builtinPrompt } from '../agents/roles.js';
import type { LoadedConfig } from '../config/load.js';
import {
  agentRoles,
  defaultLimits,
  type AgentRole,
  type Limits,
  type ModelConfig,
} from '../config/schema.js';
import { systemClock, type Clock } from '../clock.js';
import { freshServers, type ServerSource } from '../mcp/pool.js';
import type { CatalogTool, ConnectedServer } from '../mcp/servers.js';
import { createModel } from '../models/index.js';
import type { UsageWhenMissing } from '../limits/usage.js';
import type { Model } from '../models/model.js';
import type { Fetch } from '../models/httpFetch.js';
import {
  StoreConnectionLost,
  type EventRecord,
  type Fenced,
  type ModelCallRecord,
  type ClaimMove,
  type TaskOwner,
  type TaskRecord,
  type TaskStore,
  type TaskWriter,
} from '../store/taskStore.js';
import { FencedStop, unfenced } from './fence.js';
import { writesAfterStart } from './afterStart.js';
import { crashPointFrom } from './crashPoints.js';
import type { RetryPolicy } from './stages/modelCall.js';
import type { TaskFile } from '../task/taskFile.js';
import { GenAi, startSpan, traceparentOf } from '../telemetry/spans.js';
import { orchestrate, type AgentSetup, type FlowResult } from './orchestrator.js';
import { TaskSession, type ProgressSink } from './session.js';
import { captureStartingFiles } from '../replay/startingFiles.js';
import type { Stop } from './stop.js';
import { ResumeState, withRecordedReplies } from './resume.js';
import type { ContextDecision } from './context/compact.js';
import { recordedDecisions, type ModelWindow } from './context/stage.js';
import { ApprovalGate, type TokenSigner } from '../approvals/gate.js';
import { processStartTime } from '../control/processes.js';
import { parsePrivateKey, signApproval } from '@keel/kit/approval';
import { hostname } from 'node:os';
import { parseTaskFile } from '../task/taskFile.js';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { changedParts } from '../config/load.js';
import { keelOwnFiles } from '../config/ownFiles.js';

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
  /**
   * How the models the config builds reach their providers. A worker passes one for all its tasks,
   * so a provider's connection stays open from one task to the next; by default, one per task.
   */
  fetch?: Fetch;
  taskId?: string;
  /** Kill requests reach a running task through the store; this tells it to look now (the bin's SIGUSR2). */
  killSignals?: KillSignals;
  /** Set by `keel worker`: its name goes with the task's owner record, refreshed every `heartbeatMs`. */
  worker?: { id: string; heartbeatMs: number };
  /** Where the task's servers come from: a worker's pool of warm ones; by default, started for the task. */
  servers?: ServerSource;
  /** Compaction decisions by step to apply as recorded (a replay's recording), not decide again. */
  recordedContext?: ReadonlyMap<number, ContextDecision>;
  /** How provider faults are retried (tests inject the jitter and the wait); default `defaultRetry`. */
  retry?: RetryPolicy;
  /** The task file it was read from: denied to every tool with Keel's other own files. */
  taskFile?: string;
}

/** A process-wide doorbell: `keel kill` rings it (SIGUSR2), each running task checks the store. */
export interface KillSignals {
  subscribe(listener: () => void): () => void;
}

export interface ResumeTaskOptions extends Omit<RunTaskOptions, 'task' | 'taskId'> {
  taskId: string;
  /**
   * The epoch of a claim the caller already made (a worker taking a dead one's task over). Without
   * it the task is claimed here from whichever owner record it has (none, once a run released it).
   */
  epoch?: number;
  /** Why it resumes (an approval, an escalation continued, after a crash): recorded in the event log. */
  reason: string;
  /**
   * Goes on under a config (or prompt file) whose hash differs from the one the task ran under,
   * recorded as `config_change_accepted`; without it such a resume stops, naming what changed.
   */
  acceptChangedConfig?: boolean;
  /**
   * `--accept-divergence`: a recorded step whose request differs now (an edited prompt) is asked
   * afresh instead of stopping the task; each acceptance is a `divergence_accepted` event.
   */
  acceptDivergence?: boolean;
}

export interface TaskOutcome {
  run: TaskRunV1;
  flow: FlowResult;
  /**
   * Set when another process claimed the task while this run had it: the run stopped before its
   * next call and wrote nothing more; `run` is this process's view, never recorded.
   */
  fenced?: Fenced;
}

export { newTaskId } from './taskId.js';
import { newTaskId } from './taskId.js';

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
/** The models with a context window, by config key. */
function modelWindows(config: LoadedConfig['config']): Map<string, ModelWindow> {
  const windows = new Map<string, ModelWindow>();
  for (const [name, model] of Object.entries(config.models))
    if ('contextWindow' in model && model.contextWindow !== undefined)
      windows.set(name, { window: model.contextWindow, bytesPerToken: model.bytesPerToken });
  return windows;
}

export async function runTask(options: RunTaskOptions): Promise<TaskOutcome> {
  return execute(
    options,
    options.task,
    options.taskId ?? newTaskId(new Date((options.clock ?? systemClock).now())),
    undefined,
  );
}

/**
 * Resumes a task that stopped before its end — its process was killed or crashed, it waited for an
 * approval, it escalated — from its last completed step. The task runs again from its start with
 * its recorded model answers (no model call is asked again) and the same idempotency keys (no
 * tool effect happens twice); recording picks up where it left off.
 */
export async function resumeTask(options: ResumeTaskOptions): Promise<TaskOutcome> {
  const record = await options.store.getTask(options.taskId);
  if (record === undefined)
    throw new KeelError('NOT_FOUND', `no task '${options.taskId}'`, { hint: 'keel runs lists the tasks' });
  if (record.status === 'succeeded' || record.status === 'failed' || record.status === 'killed')
    throw new KeelError(
      'PRECONDITION_FAILED',
      `task ${record.id} has ended (${record.status}); it cannot be resumed`,
    );
  const [models, tools, events] = await Promise.all([
    options.store.listModelCalls(record.id),
    options.store.listToolCalls(record.id),
    options.store.listEvents(record.id),
  ]);
  const task = parseTaskFile(record.spec, `task ${record.id}`);
  await checkConfigUnchanged(options, record, events);
  return execute(options, task, record.id, {
    epoch: options.epoch,
    record,
    state: new ResumeState(models, tools, events),
    models,
    activeMs: activeTime(events),
    reason: options.reason,
    acceptDivergence: options.acceptDivergence === true,
  });
}

/** What changed in the config (and its prompt files) since a task last ran under it; none when the hash is the same. */
export interface ConfigChange {
  changed: string[];
  from: string;
  to: string;
}

/**
 * The config a task would resume under, compared with the one it ran under (or last accepted on
 * purpose): undefined when unchanged, else the parts that changed. `keel approve` and `keel
 * continue` ask this before recording a decision, so a person is told before the task goes on.
 */
export async function configChangeOf(
  options: Pick<ResumeTaskOptions, 'loaded' | 'store'>,
  taskId: string,
): Promise<ConfigChange | undefined> {
  const record = await options.store.getTask(taskId);
  if (record === undefined) return undefined;
  return changeSince(options.loaded, record, await options.store.listEvents(taskId));
}

function changeSince(
  loaded: LoadedConfig,
  record: TaskRecord,
  events: readonly EventRecord[],
): ConfigChange | undefined {
  let baseline = { hash: record.configHash, parts: undefined as Record<string, string> | undefined };
  for (const event of events) {
    const data = event.data as {
      configParts?: Record<string, string>;
      to?: string;
      parts?: Record<string, string>;
    };
    if (event.type === 'task_started' && data.configParts !== undefined)
      baseline = { ...baseline, parts: data.configParts };
    if (event.type === 'config_change_accepted' && typeof data.to === 'string')
      baseline = { hash: data.to, parts: data.parts };
  }
  if (baseline.hash === loaded.hash) return undefined;
  const changed =
    baseline.parts === undefined
      ? ['the config (its parts were not recorded)']
      : changedParts(baseline.parts, loaded.parts);
  return { changed, from: baseline.hash, to: loaded.hash };
}

/**
 * A task resumes under the config it ran under: the config is read again on resume, so an edit
 * made meanwhile (a raised limit, a rewritten prompt) would take effect unseen. A changed hash
 * stops the resume naming the parts that changed, unless accepted on purpose (then recorded, and
 * the new config is the one later resumes compare with).
 */
async function checkConfigUnchanged(
  options: ResumeTaskOptions,
  record: TaskRecord,
  events: readonly EventRecord[],
): Promise<void> {
  const { loaded, store } = options;
  const change = changeSince(loaded, record, events);
  if (change === undefined) return;
  const { changed, from, to } = change;
  if (options.acceptChangedConfig !== true)
    throw new KeelError(
      'PRECONDITION_FAILED',
      `task ${record.id} ran under another config: changed since: ${changed.join(', ')} (${loaded.file})`,
      {
        hint: `restore what changed, or go on under the new config on purpose: keel resume ${record.id} --accept-changed-config`,
        details: { changed, from, to },
      },
    );
  await store.appendEvent(
    record.id,
    'config_change_accepted',
    { changed, from, to, parts: loaded.parts, file: loaded.file },
    new Date((options.clock ?? systemClock).now()),
  );
}

/** How long a task has run so far, over all its runs (the wall-clock limit counts only those). */
export function activeTime(events: readonly EventRecord[]): number {
  let total = 0;
  let since: number | undefined;
  for (const event of events) {
    const at = Date.parse(event.at);
    if (event.type === 'task_started' || event.type === 'task_resumed') since = at;
    else if (since !== undefined && (event.type === 'task_finished' || event.type === 'task_paused')) {
      total += at - since;
      since = undefined;
    }
  }
  if (since !== undefined) total += Date.parse(events.at(-1)!.at) - since;
  return total;
}

interface Resuming {
  epoch: number | undefined;
  record: TaskRecord;
  state: ResumeState;
  models: ModelCallRecord[];
  activeMs: number;
  reason: string;
  acceptDivergence: boolean;
}

function loadSigner(loaded: LoadedConfig): TokenSigner | undefined {
  const file = loaded.config.approvals.signingKey;
  if (file === undefined) return undefined;
  const resolved = path.resolve(loaded.dir, file);
  let key;
  try {
    key = parsePrivateKey(readFileSync(resolved, 'utf8'), resolved);
  } catch (cause) {
    throw new KeelError('INVALID_ARGUMENT', `approvals.signingKey: ${(cause as Error).message}`, {
      cause,
      hint: 'keel keygen writes an Ed25519 key pair; give the deploy server the .pub with --approval-key',
    });
  }
  return (payload) => signApproval(payload, key);
}

async function execute(
  options: Omit<RunTaskOptions, 'task' | 'taskId'>,
  task: TaskFile,
  taskId: string,
  resuming: Resuming | undefined,
): Promise<TaskOutcome> {
  const { loaded, store } = options;
  const config = loaded.config;
  const clock = options.clock ?? systemClock;
  const stop = await store.getGlobalStop();
  if (stop !== null)
    throw new KeelError(
      'PRECONDITION_FAILED',
      `a global stop is in force (since ${stop.at}, by ${stop.by}): no task starts`,
      {
        hint: 'keel resume-all lifts it',
      },
    );
  const limits = mergeLimits(defaultLimits, config.limits, task.limits);
  // A raise only ever raises, as when it was first applied (Budget.raise).
  if (resuming !== undefined)
    for (const raise of await continuedRaises(store, taskId))
      for (const [key, value] of Object.entries(raise) as Array<[keyof Limits, number | undefined]>)
        if (value !== undefined && value > limits[key]) limits[key] = value;
  const createdAt = resuming?.record.createdAt ?? new Date(clock.now()).toISOString();
  const signer = loadSigner(loaded);
  const crashPoint = crashPointFrom(options.env);
  const models = new Map<string, Model>();
  const modelFor = (name: string) => {
    let model = models.get(name);
    if (model === undefined) {
      model =
        options.models?.[name] ??
        createModel(name, config.models[name]!, {
          env: options.env,
          playbook: task.playbook,
          ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
        });
      if (resuming !== undefined)
        model = withRecordedReplies(model, resuming.models, {
          accept: resuming.acceptDivergence,
          accepted: async (step, agent, at) => {
            resuming.state.forgetFrom(step);
            await store.appendEvent(
              taskId,
              'divergence_accepted',
              { step, agent, path: at },
              new Date(clock.now()),
            );
          },
        });
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

  const source = options.servers ?? freshServers;
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
  /**
   * The task's servers, started once its row is claimed, all at once. A kill meanwhile — `keel kill`
   * rings and the claim is no longer this run's, or the run's own kill signal — aborts the start-up
   * (each server not yet connected is closed with its process). A run stopped so, or whose server did
   * not start, ends the task here (`killed`, `error`) unless another process owns it now.
   */
  const startServers = async (claimed: TaskWriter): Promise<Map<string, ConnectedServer>> => {
    const abort = new AbortController();
    const stop = () => abort.abort();
    options.kill?.addEventListener('abort', stop, { once: true });
    if (options.kill?.aborted === true) stop();
    const unring = options.killSignals?.subscribe(() => {
      void store
        .getOwnership(taskId)
        .then((ownership) => {
          if (ownership.epoch !== claimed.epoch) stop();
        })
        .catch(() => undefined);
    });
    try {
      return await source.acquire(config.servers, {
        workspace: loaded.workspace,
        stateDir: loaded.stateDir,
        env: options.env,
        deny: keelOwnFiles(loaded, options.taskFile === undefined ? [] : [options.taskFile]),
        only: wanted,
        signal: abort.signal,
      });
    } catch (error) {
      const killed = abort.signal.aborted;
      // A server's start error carries what it said on stderr in its hint: kept with the outcome, so
      // `keel show` (and a worker's log) tells why, not only that the connection closed.
      const message = killed
        ? 'the task was killed while its servers started'
        : error instanceof KeelError && error.hint !== undefined
          ? `${error.message}; ${error.hint}`
          : (error as Error).message;
      const run = unstartedRun(task, taskId, createdAt, killed ? 'killed' : 'error', message, clock);
      const ended = await endUnstarted(claimed, run, clock);
      endRecorded = ended.ok;
      // Killed: the run ends killed (recorded here, or by the kill when this write was fenced).
      if (killed) throw new StoppedWhileStarting(run, error);
      // Another process owns the task now: this run stops without a write, as any fenced run does.
      if (!ended.ok) throw new FencedStop(ended);
      throw error;
    } finally {
      options.kill?.removeEventListener('abort', stop);
      unring?.();
    }
  };
  let servers = new Map<string, ConnectedServer>();
  let session: TaskSession | undefined;
  let writer: TaskWriter | undefined;
  let storeLost = false;
  let endRecorded = false;
  // Set once the run's start (`task_started`, `task_resumed`) and its starting state are recorded:
  // a failure before that ends the run as a failed start-up.
  let begun = false;
  let fencedBy: Fenced | undefined;
  let unsubscribe: (() => void) | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let ended: TaskRunV1['status'] | undefined;
  const flow: FlowResult = { reviews: [], tests: [], deploys: [] };
  try {
    const queued = resuming === undefined ? await store.getTask(taskId) : undefined;
    if (queued !== undefined && queued.status !== 'queued')
      throw new KeelError(
        'CONFLICT',
        `task ${taskId} exists (${queued.status}); only a queued task starts here`,
        {
          hint: 'keel resume TASK goes on with a task that stopped',
        },
      );
    const owner: TaskOwner = {
      pid: process.pid,
      startTime: processStartTime(process.pid) ?? '',
      host: hostname(),
      // Filled in once they have started: the row and the claim come first.
      serverPids: [],
      ...(options.worker === undefined
        ? {}
        : { worker: options.worker.id, heartbeatAt: new Date(clock.now()).toISOString() }),
    };
    const claim = async (expected: TaskOwner | null, move?: ClaimMove): Promise<TaskWriter> => {
      const claimed = await store.claimOwner(taskId, expected, owner, move);
      if (!claimed.ok && claimed.status !== undefined)
        throw new KeelError(
          'CONFLICT',
          `task ${taskId} is ${claimed.status} now; only a queued task starts here`,
          { hint: 'keel resume TASK goes on with a task that stopped' },
        );
      if (!claimed.ok)
        throw new KeelError(
          'CONFLICT',
          `task ${taskId} is owned by pid ${claimed.current?.pid ?? '?'}${claimed.current?.worker === undefined ? '' : ` (worker ${claimed.current.worker})`}: it was not claimed`,
          { hint: 'keel kill TASK stops it; a worker takes over a task whose worker stopped beating' },
        );
      crashPoint('supervisor.after-claim');
      return store.writer(taskId, claimed.epoch);
    };
    const onFenced = (f: Fenced) => {
      fencedBy ??= f;
      session?.fence(f);
    };
    // The task's row exists, claimed by this process, before any server starts: a kill or the global
    // stop finds it (`starting`) and fences it, and its servers' start-up is aborted.
    if (resuming === undefined) {
      // Claimed and `starting` in one write: a connection lost between the two would leave the task
      // `queued` with an owner, which neither a run job (it needs no owner) nor a takeover (it needs
      // `starting` or `running`) ever picks up again.
      if (queued !== undefined) writer = await claim(null, { from: 'queued', to: 'starting' });
      else {
        await store.createTask({
          id: taskId,
          type: task.type,
          title: task.title,
          mode: task.mode,
          status: 'starting',
          createdAt,
          endedAt: null,
          configHash: loaded.hash,
          spec: task,
          startingState: null,
          run: null,
        });
        writer = await claim(null);
      }
    } else if (resuming.epoch === undefined) writer = await claim(await store.getOwner(taskId));
    else writer = store.writer(taskId, resuming.epoch);
    const claimed = writer;
    if (options.worker !== undefined) {
      // From the claim on, servers starting included. The heartbeat renews only this claim: once another process holds the task it is refused,
      // and this run stops — a stalled worker never writes its owner record back over its successor's.
      const beat = async () => {
        const renewed = await claimed.renewOwner(new Date(clock.now()));
        if (!renewed.ok) onFenced(renewed);
      };
      heartbeat = setInterval(() => void beat().catch(() => undefined), options.worker.heartbeatMs);
      heartbeat.unref();
    }
    servers = await startServers(claimed);
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
        : {
            scope: scopeFor(
              'orchestrator',
              {
                // detect_projects, where the server has it, checks at the start that the tests can be found.
                [testServer.name]: testServer.tools.some((t) => t.name === 'detect_projects')
                  ? ['detect_projects', 'run_tests']
                  : ['run_tests'],
              },
              servers,
            ),
          };
    const traceparent = rootSpan === undefined ? undefined : traceparentOf(rootSpan.ctx);
    const meta = traceparent === undefined ? {} : { traceparent };
    // The start is recorded while the session begins: the first model request goes out at once,
    // and every write of the session lands after `task_started`, in order (writesAfterStart). No tool
    // call is sent before the start is recorded (the session's `started`). The starting state (a
    // git_status, the longest part of the start) is read beside the session's first calls: a call
    // that reads cannot change what it reads, and every other call waits for it (`captured`), so it
    // is the state before the task changed anything.
    const started = (async () => {
      unfenced(
        await claimed.updateOwner({
          serverPids: [...servers.values()].flatMap((server) =>
            server.pid === undefined ? [] : [server.pid],
          ),
        }),
        onFenced,
      );
      unfenced(await claimed.updateTask({ status: 'running' }), onFenced);
      const [type, data] =
        resuming === undefined
          ? ['task_started', { type: task.type, mode: task.mode, limits, configParts: loaded.parts }]
          : [
              'task_resumed',
              {
                reason: resuming.reason,
                fromStep: resuming.state.lastStep,
                configChanged: resuming.record.configHash !== loaded.hash,
              },
            ];
      unfenced(await claimed.appendEvent(type, data, new Date(clock.now())), onFenced);
    })();
    // Observed below (and by every write): never an unhandled rejection.
    started.catch(() => undefined);
    const w = writesAfterStart(claimed, started);
    // A resumed task that stopped before its starting state was recorded has none yet: it is read
    // now (nothing but reads ran before, so the files are as the task found them).
    const captured = (async () => {
      if (resuming !== undefined && resuming.record.startingState !== null) return;
      const start = await startingState(servers, loaded, meta);
      // The dirty and untracked files' bytes (for a replay) go to the task row only, never into the event log.
      const recorded =
        start['git'] === undefined
          ? start
          : { ...start, files: captureStartingFiles(loaded.workspace, start['git']) };
      unfenced(await w.updateTask({ startingState: recorded }), onFenced);
    })();
    captured.catch(() => undefined);
    try {
      const gate = new ApprovalGate({
        store,
        writer: w,
        onFenced,
        taskId,
        config: config.approvals,
        signer,
        clock,
      });
      const environments = await approvalEnvironments(servers, meta);
      session = new TaskSession({
        taskId,
        store,
        writer: w,
        crashPoint,
        ...(options.retry === undefined ? {} : { retry: options.retry }),
        servers,
        workspace: loaded.workspace,
        limits,
        loops: config.loops,
        sideEffects: config.sideEffects,
        extraIrreversible: config.irreversible.tools,
        irreversiblePaths: config.irreversible.paths,
        approvalEnvironments: environments,
        started,
        captured,
        tracer,
        rootContext: rootSpan?.ctx ?? otelContext.active(),
        clock,
        progress: options.progress ?? (() => {}),
        kill: options.kill ?? new AbortController().signal,
        gate,
        escalateLimits: config.escalateLimits,
        resume: resuming?.state,
        ...(resuming === undefined ? {} : { elapsedMs: resuming.activeMs }),
        context: {
          windows: modelWindows(config),
          recorded: new Map([
            ...(resuming === undefined ? [] : recordedDecisions(resuming.models)),
            ...(options.recordedContext ?? []),
          ]),
        },
        usageWhenMissing: (name) => usageWhenMissingOf(config.models[name]),
      });
    } catch (error) {
      // No session (a deploy server that died listing its environments): recorded as a failed
      // start-up (below) once the start's own writes have settled, never beside them.
      await Promise.allSettled([started, captured]);
      throw error;
    }
    const current = session;
    if (fencedBy !== undefined) current.fence(fencedBy);
    unsubscribe = options.killSignals?.subscribe(() => {
      void current.checkOwnership().catch(() => undefined);
    });
    let stopReason: Stop | undefined;
    let end: { status: 'succeeded' | 'failed'; message: string } | undefined;
    const flowing = orchestrate(session, task, agents, testRunner, flow).then(
      (result) => ({ result }),
      (error: unknown) => ({ error }),
    );
    try {
      await started;
      await captured;
      begun = true;
    } catch (error) {
      // The start or the starting state was not recorded: the session's calls are cancelled (none
      // that can change a file was sent), and the run ends as a failed start-up (below).
      current.abandon();
      await flowing;
      throw error;
    }
    const flowed = await flowing;
    if ('result' in flowed) {
      if (flowed.result.ok) end = flowed.result.value;
      else stopReason = flowed.result.stop;
    } else {
      const { error } = flowed;
      // Whether the write landed is unknown: not the task's error, a crash of this run (below).
      if (error instanceof StoreConnectionLost) throw error;
      if (error instanceof FencedStop) onFenced(error.fenced);
      stopReason = { status: 'error', message: (error as Error).message };
    }
    if (session.fenced !== undefined) stopReason = session.abortStop();
    const status = end?.status ?? stopReason!.status;
    const waiting = status === 'waiting' || status === 'escalated';
    const run: TaskRunV1 = {
      version: 'taskRun.v1',
      id: taskId,
      type: task.type,
      mode: task.mode,
      startedAt: createdAt,
      endedAt: waiting ? null : new Date(clock.now()).toISOString(),
      status,
      outcome: {
        message: end?.message ?? stopReason!.message,
        ...(stopReason?.limit === undefined ? {} : { limit: stopReason.limit }),
        ...(stopReason?.overshoot === undefined ? {} : { overshoot: stopReason.overshoot }),
        ...(stopReason?.loop === undefined ? {} : { loop: stopReason.loop }),
      },
      steps: session.step,
      tokens: {
        input: session.budget.used.inputTokens,
        output: session.budget.used.outputTokens,
        // Only when a provider reported cache reads: a run without any keeps the record it had.
        ...(session.budget.cachedInputTokens > 0 ? { cachedInput: session.budget.cachedInputTokens } : {}),
      },
      costUsd: session.budget.used.costUsd,
      approvalsAsked: (await store.listApprovals({ taskId })).length,
      toolCalls: session.toolCalls,
      ...(status === 'error' ? { error: { code: 'TASK_ERROR', message: stopReason!.message } } : {}),
    };
    // A fenced run writes nothing more: a kill's end is recorded by the killer, a takeover's by the new owner.
    if (session.fenced !== undefined) return fencedEnd(store, taskId, session.fenced, run, flow);
    try {
      // The event and the status together: fenced between them, a successor would end the task again.
      unfenced(
        await w.endRun(
          waiting ? 'task_paused' : 'task_finished',
          { status, outcome: run.outcome },
          new Date(clock.now()),
          { status, endedAt: run.endedAt, run },
        ),
        onFenced,
      );
    } catch (error) {
      if (!(error instanceof FencedStop)) throw error;
      return fencedEnd(store, taskId, error.fenced, run, flow);
    }
    ended = status;
    rootSpan?.span.setAttribute('keel.task.status', status);
    rootSpan?.end(status === 'succeeded' ? undefined : status);
    return { run, flow };
  } catch (error) {
    if (error instanceof StoppedWhileStarting) return { run: error.run, flow };
    // The store's connection dropped under a write: the run stops as a crash would — no end
    // recorded, its owner record kept (below) to go stale — and is resumed from what the store holds.
    if (error instanceof StoreConnectionLost) {
      storeLost = true;
      throw new KeelError(
        'UNAVAILABLE',
        `task ${taskId}: ${error.message}; this run stopped where it stood, and the task is resumed from its last recorded step`,
        {
          cause: error,
          hint:
            options.worker === undefined
              ? `once the database answers: keel resume ${taskId}`
              : 'a worker takes it over once its heartbeat is stale, from its last recorded step',
        },
      );
    }
    if (!(error instanceof FencedStop)) {
      // The start-up failed after the claim (a server that died once started, its starting state
      // unread): the end is recorded as a failed server start's is, so the task is never left
      // `starting` or `running` with no owner — no worker's reaper resumes an ownerless task.
      // Refused before the claim, or by the end's own writes once the session ran: unrecorded.
      if (writer !== undefined && (session === undefined || !begun) && !endRecorded) {
        // A KeelError's hint says what to fix (a tool the config names and the server lacks).
        const next =
          error instanceof KeelError && error.hint !== undefined
            ? error.hint
            : `keel resume ${taskId} starts its servers again`;
        const message = `the task's start-up failed: ${(error as Error).message}; ${next}`;
        const run = unstartedRun(task, taskId, createdAt, 'error', message, clock, session);
        await endUnstarted(writer, run, clock).catch(() => undefined);
        // A KeelError already says what to do; anything else (an MCP connection closed) is told so.
        if (!(error instanceof KeelError))
          throw new KeelError('UNAVAILABLE', `task ${taskId}: ${message}`, {
            cause: error,
            hint: `keel show ${taskId} has what was recorded`,
          });
      }
      throw error;
    }
    throw new KeelError('CONFLICT', `task ${taskId}: ${error.message}; this process stopped`, {
      cause: error,
      hint: 'another process runs the task now, or it was killed: keel show TASK',
    });
  } finally {
    clearInterval(heartbeat);
    unsubscribe?.();
    if (!storeLost) await writer?.releaseOwner().catch(() => undefined);
    session?.dispose();
    await source.release(servers, await reusable(store, taskId, session, ended));
    if (rootSpan !== undefined && rootSpan.span.isRecording()) rootSpan.end('aborted');
  }
}

/** A run stopped while its servers started (killed), with the record of how it ended. */
class StoppedWhileStarting extends Error {
  constructor(
    readonly run: TaskRunV1,
    cause: unknown,
  ) {
    super(run.outcome.message, { cause });
  }
}

/** The record of a run that ended in its start-up: with what its session did meanwhile, if it had one. */
function unstartedRun(
  task: TaskFile,
  taskId: string,
  startedAt: string,
  status: 'killed' | 'error',
  message: string,
  clock: Clock,
  session?: TaskSession,
): TaskRunV1 {
  return {
    version: 'taskRun.v1',
    id: taskId,
    type: task.type,
    mode: task.mode,
    startedAt,
    endedAt: new Date(clock.now()).toISOString(),
    status,
    outcome: { message },
    steps: session?.step ?? 0,
    tokens: {
      input: session?.budget.used.inputTokens ?? 0,
      output: session?.budget.used.outputTokens ?? 0,
    },
    costUsd: session?.budget.used.costUsd ?? 0,
    approvalsAsked: 0,
    toolCalls: session?.toolCalls ?? [],
    ...(status === 'error' ? { error: { code: 'TASK_ERROR', message } } : {}),
  };
}

/** Records the end of a run that stopped before its session ran: its last event and status together. */
const endUnstarted = (writer: TaskWriter, run: TaskRunV1, clock: Clock) =>
  writer.endRun('task_finished', { status: run.status, outcome: run.outcome }, new Date(clock.now()), {
    status: run.status,
    endedAt: run.endedAt,
    run,
  });

/** How a run that lost its task ends: killed (the killer records it), or taken over by another process. */
async function fencedEnd(
  store: TaskStore,
  taskId: string,
  fenced: Fenced,
  run: TaskRunV1,
  flow: FlowResult,
): Promise<TaskOutcome> {
  const { killRequested } = await store.getOwnership(taskId);
  if (!killRequested) return { run, flow, fenced };
  return { run: { ...run, status: 'killed', outcome: { message: 'the task was killed' } }, flow };
}

/**
 * Whether a task's servers may serve another task: only when it ended on its own, nothing of it was
 * cancelled mid-call, and no kill was asked for. The kill request is read after the owner record is
 * cleared: a `keel kill` that still saw this task's server pids (and will reap them) had already
 * recorded its request, so those servers are closed here, never handed on.
 */
async function reusable(
  store: TaskStore,
  taskId: string,
  session: TaskSession | undefined,
  ended: TaskRunV1['status'] | undefined,
): Promise<boolean> {
  if (session === undefined || session.signal.aborted || ended === undefined || ended === 'error')
    return false;
  return !(await store.killRequested(taskId).catch(() => true));
}

/**
 * The wall-clock limits people raised when they continued this task's escalations. A resumed task
 * runs again from its start with its clock standing where it stood, so the raise must hold from its
 * first step — else a clock already past its old limit escalates again at step 1. The other limits
 * count again from zero on the replay and reach the escalated step as before, where the continue
 * is consumed (its raise applied, its hint delivered).
 */
async function continuedRaises(store: TaskStore, taskId: string): Promise<Array<Partial<Limits>>> {
  return (await store.listApprovals({ taskId }))
    .filter((a) => a.kind === 'escalation' && (a.status === 'approved' || a.status === 'consumed'))
    .flatMap((a) => {
      const raised = (a.decision as { raise?: Partial<Limits> } | null)?.raise?.wallClockMs;
      return raised === undefined ? [] : [{ wallClockMs: raised }];
    });
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

/** How a model's unreported usage is counted: its config's choice, else at the reservation. */
const usageWhenMissingOf = (model: ModelConfig | undefined): UsageWhenMissing =>
  model !== undefined && 'usageWhenMissing' in model ? model.usageWhenMissing : 'reservation';
