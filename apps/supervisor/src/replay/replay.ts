import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KeelError } from '@keel/kit/core';
import type { TaskStatus } from '@keel/contracts';
import type { LoadedConfig } from '../config/load.js';
import { recordedDecisions } from '../engine/context/stage.js';
import { resumeTask, runTask } from '../engine/runTask.js';
import type { ProgressSink } from '../engine/session.js';
import type { Model } from '../models/model.js';
import { createReplayModel } from '../models/replay.js';
import { createSqliteTaskStore } from '../store/sqliteTaskStore.js';
import type { EventRecord, ModelCallRecord, TaskStore, ToolCallRecord } from '../store/taskStore.js';
import { parseTaskFile } from '../task/taskFile.js';
import { ReplayComparer, type Divergence } from './compare.js';
import { systemClock, type Clock } from '../clock.js';
import { prepareReplayWorld, type RecordedStart } from './prepare.js';

export interface ReplayReport {
  taskId: string;
  replayTaskId: string;
  identical: boolean;
  /** The recording's steps (model calls), and how many the replay took. */
  steps: number;
  replayedSteps: number;
  toolCalls: { recorded: number; replayed: number };
  status: { recorded: TaskStatus; replayed: TaskStatus };
  divergence: Divergence | null;
  /** Where the replay differs from the recording by its nature, or could only approximate it. */
  notes: string[];
  /** The replay's world, when kept (`keep`). */
  dir: string | null;
}

export interface ReplayOptions {
  /** The store holding the recording. */
  store: TaskStore;
  taskId: string;
  /** The config to replay under (a changed server or supervisor is what a replay checks). */
  loaded: LoadedConfig;
  env: NodeJS.ProcessEnv;
  /** Where to build the replay's world; default a new temporary directory. */
  dir?: string;
  /** Keep the world (the copy, the replay's store) afterwards. */
  keep?: boolean;
  progress?: ProgressSink;
  /** Models by config key instead of the replay model (tests: a model that must not be called). */
  models?: Record<string, Model>;
  /** Where the replay reads the time (default: the system clock). */
  clock?: Clock;
}

type ContractEvent = { agent: string; contract: string; accepted: boolean; at: string; issues?: unknown };

const contractEvents = (events: readonly EventRecord[]): ContractEvent[] =>
  events
    .filter((e) => e.type === 'contract_accepted' || e.type === 'contract_rejected')
    .map((e) => {
      const data = e.data as { agent: string; contract: string; issues?: unknown };
      return {
        agent: data.agent,
        contract: data.contract,
        accepted: e.type === 'contract_accepted',
        at: e.at,
        ...(data.issues === undefined ? {} : { issues: data.issues }),
      };
    });

/** The step a moment falls in: the number of model calls started by then. */
const stepAt = (models: readonly ModelCallRecord[], at: string) =>
  models.filter((m) => Date.parse(m.startedAt) <= Date.parse(at)).length;

/** Orders divergences by where they happened; a step's tool calls come before its contract. */
const position = (d: Divergence) => d.step * 1e6 + (d.callIndex ?? (d.kind === 'contract' ? 5e5 : 9e5));

/**
 * A model answering each step with the recorded reply — recorded minted ids (commit shas, plan
 * ids) rewritten to the replay's own — after comparing the tool calls made so far; it refuses to
 * answer past the first divergence, so a diverged replay stops instead of acting on a story that
 * no longer holds.
 */
function aliasingReplayModel(
  records: readonly ModelCallRecord[],
  name: string,
  comparer: ReplayComparer,
  replayedCalls: () => Promise<ToolCallRecord[]>,
): Model {
  const base = createReplayModel(records, name);
  return {
    provider: 'replay',
    model: name,
    async generate(request, context) {
      const divergence = comparer.feed(await replayedCalls());
      if (divergence !== undefined)
        throw new KeelError(
          'CONFLICT',
          `replay stopped at its first divergence (step ${divergence.step}): ${divergence.message}`,
        );
      const reply = await base.generate(request, context);
      return { ...reply, text: comparer.forward(reply.text), toolCalls: comparer.forward(reply.toolCalls) };
    },
  };
}

/**
 * Re-runs a recorded task from its recorded starting state with the replay model — no model is
 * called — on copies of its roots, in a fresh state dir (a fresh idempotency namespace, so every
 * tool really runs), with deploy targets redirected into the replay dir; and reports the first
 * divergence from the recording, or that the replay was identical.
 */
export async function replayTask(options: ReplayOptions): Promise<ReplayReport> {
  const clock = options.clock ?? systemClock;
  const task = await options.store.getTask(options.taskId);
  if (task === undefined) throw new KeelError('NOT_FOUND', `no task '${options.taskId}'`);
  if (task.run === null || task.status === 'running' || task.status === 'starting')
    throw new KeelError(
      'PRECONDITION_FAILED',
      `task ${task.id} has not finished: there is no whole run to replay`,
    );
  const [models, tools, events] = await Promise.all([
    options.store.listModelCalls(task.id),
    options.store.listToolCalls(task.id),
    options.store.listEvents(task.id),
  ]);
  const purged = models.find((m) => m.reply === null && m.error === null);
  if (purged !== undefined || tools.some((t) => t.arguments === null && t.result === null))
    throw new KeelError(
      'PRECONDITION_FAILED',
      `task ${task.id}'s call bodies were purged past retention: it cannot be replayed`,
    );
  const start = (task.startingState ?? {}) as RecordedStart;
  const dir = options.dir ?? mkdtempSync(path.join(os.tmpdir(), 'keel-replay-'));
  try {
    const world = prepareReplayWorld({ loaded: options.loaded, start, dir });
    const notes = [...world.notes];
    if (start.configHash !== undefined && start.configHash !== options.loaded.hash)
      notes.push('the config differs from the one the task ran under');
    const store = createSqliteTaskStore(world.stateDir);
    const replayTaskId = `r-${task.id.replace(/^t-/, '')}-${randomBytes(2).toString('hex')}`;
    const comparer = new ReplayComparer(tools, world.substitutions);
    try {
      const replayed = () => store.listToolCalls(replayTaskId);
      const replayModels: Record<string, Model> = {};
      for (const [key, config] of Object.entries(options.loaded.config.models))
        replayModels[key] =
          options.models?.[key] ??
          aliasingReplayModel(models, 'model' in config ? config.model : key, comparer, replayed);
      const runOptions = {
        loaded: world.loaded,
        store,
        clock,
        env: { ...options.env, ...world.env },
        models: replayModels,
        // Compaction as recorded: a replay under another window or estimate sends the same requests.
        recordedContext: recordedDecisions(models),
        ...(options.progress === undefined ? {} : { progress: options.progress }),
      };
      let { run } = await runTask({
        ...runOptions,
        task: parseTaskFile(task.spec, `task ${task.id}'s recorded task file`),
        taskId: replayTaskId,
      });
      // Where the recording waited for a person, the replay takes the decision the person took.
      const recordedApprovals = await options.store.listApprovals({ taskId: task.id });
      const used = new Set<string>();
      let approvalDivergence: Divergence | undefined;
      // The recording still waits on this same request: the replay waiting there too is what was recorded.
      let waitsAsRecorded = false;
      while (run.status === 'waiting' && approvalDivergence === undefined && !waitsAsRecorded) {
        const pending = await store.listApprovals({ taskId: replayTaskId, status: 'pending' });
        for (const asked of pending) {
          const recorded = recordedApprovals.find(
            (a) =>
              !used.has(a.id) &&
              a.kind === asked.kind &&
              a.step === asked.step &&
              a.callIndex === asked.callIndex &&
              a.tool === asked.tool &&
              comparer.sameArguments(a.arguments, asked.arguments),
          );
          if (recorded !== undefined && recorded.status === 'pending' && task.status === 'waiting') {
            waitsAsRecorded = true;
            break;
          }
          if (recorded === undefined || recorded.kind !== 'tool' || recorded.decidedAt === null) {
            approvalDivergence = {
              kind: 'approval',
              step: asked.step,
              callIndex: asked.callIndex,
              agent: asked.agent,
              message:
                recorded === undefined
                  ? `the replay asked a person about ${asked.tool ?? 'an escalation'}; the recording did not`
                  : `the recording's ${recorded.kind} ${recorded.id} was never decided (or is an escalation, which a replay does not decide)`,
              actual: { tool: asked.tool, arguments: asked.arguments, reasons: asked.reasons },
            };
            break;
          }
          used.add(recorded.id);
          const approve = recorded.status === 'approved' || recorded.status === 'consumed';
          // The recorded approver's name, so results that quote it stay identical; the event says it was a replay.
          await store.decideApproval(asked.id, {
            approve,
            by: recorded.decidedBy ?? 'unknown',
            reason: `as decided in the recording (${recorded.id})`,
            now: new Date(clock.now()),
          });
          await store.appendEvent(
            replayTaskId,
            approve ? 'approval_granted' : 'approval_denied',
            {
              approval: asked.id,
              tool: asked.tool,
              by: recorded.decidedBy ?? 'unknown',
              replayOf: recorded.id,
            },
            new Date(clock.now()),
          );
        }
        if (approvalDivergence !== undefined || waitsAsRecorded) break;
        ({ run } = await resumeTask({
          ...runOptions,
          taskId: replayTaskId,
          reason: 'replay: the recorded decision',
        }));
      }
      const [replayedTools, replayedModels, replayedEvents, replayTask] = await Promise.all([
        replayed(),
        store.listModelCalls(replayTaskId),
        store.listEvents(replayTaskId),
        store.getTask(replayTaskId),
      ]);
      const candidates: Divergence[] = [];
      const toolDivergence = comparer.finish(replayedTools);
      if (toolDivergence !== undefined) candidates.push(toolDivergence);
      if (approvalDivergence !== undefined) candidates.push(approvalDivergence);
      const contracts = { recorded: contractEvents(events), replayed: contractEvents(replayedEvents) };
      for (const [i, got] of contracts.replayed.entries()) {
        const want = contracts.recorded[i];
        if (
          want !== undefined &&
          want.agent === got.agent &&
          want.contract === got.contract &&
          want.accepted === got.accepted
        )
          continue;
        candidates.push({
          kind: 'contract',
          step: stepAt(replayedModels, got.at),
          agent: got.agent,
          message:
            want === undefined
              ? `the replay handed in a ${got.contract} the recording does not have`
              : `the ${want.agent} agent's ${want.contract} was ${want.accepted ? 'accepted' : 'rejected'} in the recording and ${got.accepted ? 'accepted' : 'rejected'} in the replay`,
          expected: want ?? null,
          actual: got,
        });
        break;
      }
      const modelError = replayedModels.find((m) => m.error !== null);
      if (modelError !== undefined && !/replay stopped at its first divergence/.test(modelError.error!))
        candidates.push({
          kind: 'model',
          step: modelError.step,
          agent: modelError.agent,
          message: modelError.error!,
        });
      candidates.sort((a, b) => position(a) - position(b));
      let divergence = candidates[0] ?? null;
      if (divergence === null && run.status !== task.status)
        divergence = {
          kind: 'outcome',
          step: run.steps,
          agent: 'orchestrator',
          message: `the recording ended ${task.status} (${task.run.outcome.message}), the replay ${run.status} (${run.outcome.message})`,
        };
      for (const [name, recorded] of Object.entries(start.servers ?? {})) {
        const now = (replayTask?.startingState as RecordedStart | undefined)?.servers?.[name];
        if (now === undefined) continue;
        if (now.version !== recorded.version)
          notes.push(`servers.${name}: ${recorded.version} then, ${now.version} now`);
        else if (now.toolListHash !== recorded.toolListHash)
          notes.push(`servers.${name}: its tool list changed`);
      }
      return {
        taskId: task.id,
        replayTaskId,
        identical: divergence === null,
        steps: task.run.steps,
        replayedSteps: run.steps,
        toolCalls: { recorded: tools.length, replayed: replayedTools.length },
        status: { recorded: task.status, replayed: run.status },
        divergence,
        notes,
        dir: options.keep === true ? world.dir : null,
      };
    } finally {
      await store.close();
    }
  } finally {
    if (options.keep !== true && options.dir === undefined) rmSync(dir, { recursive: true, force: true });
  }
}

/** The report for a terminal. */
export function formatReplay(report: ReplayReport): string {
  const lines: string[] = [];
  if (report.divergence === null)
    lines.push(
      `identical: ${report.steps} steps, ${report.toolCalls.replayed} tool calls, ended ${report.status.replayed} as recorded`,
    );
  else {
    const d = report.divergence;
    lines.push(
      `DIVERGED at step ${d.step}${d.callIndex === undefined ? '' : `, call ${d.callIndex}`} (${d.agent}): ${d.kind}`,
      `  ${d.message}`,
    );
    if (d.cause !== undefined) lines.push(`  cause: ${d.cause.explanation}`);
    if (d.expected !== undefined) lines.push(`  recorded: ${JSON.stringify(d.expected).slice(0, 600)}`);
    if (d.actual !== undefined) lines.push(`  replayed: ${JSON.stringify(d.actual).slice(0, 600)}`);
    lines.push(
      `  the recording: ${report.steps} steps, ${report.toolCalls.recorded} tool calls, ${report.status.recorded}; the replay: ${report.replayedSteps} steps, ${report.toolCalls.replayed} tool calls, ${report.status.replayed}`,
    );
  }
  for (const note of report.notes) lines.push(`note: ${note}`);
  if (report.dir !== null) lines.push(`the replay's copy and store: ${report.dir}`);
  return lines.join('\n');
}
