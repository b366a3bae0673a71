import type { TaskStatus } from '@keel/contracts';
import type {
  ApprovalRecord,
  EventRecord,
  ModelCallRecord,
  TaskRecord,
  TaskStore,
  ToolCallRecord,
} from '../store/taskStore.js';
import { activeTime } from '../engine/runTask.js';
import { buildTrace, type TraceSpan } from './trace.js';

/**
 * What the console's pages read, shaped from the task store and nothing else. Figures come from the
 * task's run record once it has one; while it runs they are summed from its recorded model calls.
 */
export interface RunRow {
  id: string;
  title: string;
  type: string;
  mode: string;
  status: TaskStatus;
  /** The agent running now, or the last one that ran. */
  agent: string | null;
  steps: number;
  tokens: { input: number; output: number };
  costUsd: number;
  toolCalls: number;
  durationMs: number;
  outcome: string | null;
  createdAt: string;
  endedAt: string | null;
}

/** How many bytes of a tool result or a model call body a page shows before saying it was cut. */
export const shownBytes = 16_384;

export interface Bounded {
  text: string;
  bytes: number;
  truncated: boolean;
}

/** A recorded value as text, cut at `limit` bytes (on a character boundary) and saying so. */
export function bounded(value: unknown, limit = shownBytes): Bounded {
  const text = typeof value === 'string' ? value : (JSON.stringify(value, null, 2) ?? 'null');
  const bytes = Buffer.byteLength(text);
  if (bytes <= limit) return { text, bytes, truncated: false };
  let cut = Buffer.from(text).subarray(0, limit).toString('utf8');
  if (cut.endsWith('\uFFFD')) cut = cut.slice(0, -1);
  return { text: cut, bytes, truncated: true };
}

function lastAgent(events: readonly EventRecord[]): string | null {
  for (let i = events.length - 1; i >= 0; i--) {
    const event = events[i]!;
    if (event.type === 'agent_started') return String((event.data as { agent?: unknown }).agent);
  }
  return null;
}

function durationOf(task: TaskRecord, events: readonly EventRecord[], now: number): number {
  const start = Date.parse(task.createdAt);
  if (task.endedAt !== null) return Date.parse(task.endedAt) - start;
  if (task.status === 'running' || task.status === 'starting') return now - start;
  return Date.parse(events.at(-1)?.at ?? task.createdAt) - start;
}

async function rowOf(store: TaskStore, task: TaskRecord, now: number): Promise<RunRow> {
  const events = await store.listEvents(task.id);
  const run = task.status === 'running' ? null : task.run;
  let figures: Pick<RunRow, 'steps' | 'tokens' | 'costUsd' | 'toolCalls'>;
  if (run !== null)
    figures = { steps: run.steps, tokens: run.tokens, costUsd: run.costUsd, toolCalls: run.toolCalls.length };
  else {
    const [models, tools] = await Promise.all([store.listModelCalls(task.id), store.listToolCalls(task.id)]);
    figures = {
      steps: models.reduce((max, m) => Math.max(max, m.step), 0),
      tokens: {
        input: models.reduce((n, m) => n + m.inputTokens, 0),
        output: models.reduce((n, m) => n + m.outputTokens, 0),
      },
      costUsd: models.reduce((n, m) => n + m.costUsd, 0),
      toolCalls: tools.length,
    };
  }
  return {
    id: task.id,
    title: task.title,
    type: task.type,
    mode: task.mode,
    status: task.status,
    agent: lastAgent(events),
    ...figures,
    durationMs: durationOf(task, events, now),
    outcome: task.run?.outcome.message ?? null,
    createdAt: task.createdAt,
    endedAt: task.endedAt,
  };
}

export async function listRuns(
  store: TaskStore,
  filter: { status?: TaskStatus; type?: string; limit?: number },
  now: number,
): Promise<RunRow[]> {
  const tasks = await store.listTasks({ limit: filter.limit ?? 200, ...filter });
  return Promise.all(tasks.map((task) => rowOf(store, task, now)));
}

export interface LimitUse {
  limit: string;
  used: number;
  cap: number | null;
}

/** Each limit the task ran under, against what it used (from its records and events). */
function limitsUsed(row: RunRow, events: readonly EventRecord[], now: number): LimitUse[] {
  const started = events.find((e) => e.type === 'task_started');
  const caps = ((started?.data as { limits?: Record<string, number> } | undefined)?.limits ?? {}) as Record<
    string,
    number
  >;
  const count = (type: string, where: (data: Record<string, unknown>) => boolean = () => true) =>
    events.filter((e) => e.type === type && where((e.data ?? {}) as Record<string, unknown>)).length;
  const used: Record<string, number> = {
    steps: row.steps,
    tokens: row.tokens.input + row.tokens.output,
    // The wall-clock limit counts only the time the task ran, not the time it waited for a human.
    wallClockMs:
      activeTime(events) +
      (row.status === 'running' ? now - Date.parse(events.at(-1)?.at ?? row.createdAt) : 0),
    toolCalls: row.toolCalls,
    costUsd: row.costUsd,
    reviewRounds: count('agent_started', (d) => d['agent'] === 'review'),
    testRounds: count('tests'),
    contractRetries: count('contract_rejected'),
  };
  return Object.entries(used).map(([limit, value]) => ({ limit, used: value, cap: caps[limit] ?? null }));
}

export interface RunDetail {
  row: RunRow;
  spec: unknown;
  startingState: unknown;
  trace: TraceSpan;
  limits: LimitUse[];
  /** The contracts agents handed in, in order. */
  contracts: Array<{ at: string; agent: string; contract: string; value: unknown }>;
  modelCalls: Array<Omit<ModelCallRecord, 'request' | 'raw' | 'reply'> & { purged: boolean }>;
  toolCalls: Array<
    Omit<ToolCallRecord, 'arguments' | 'result' | 'effect'> & {
      arguments: Bounded | null;
      result: Bounded | null;
      effect: unknown;
    }
  >;
  events: EventRecord[];
  approvals: ApprovalRecord[];
}

export async function runDetail(store: TaskStore, id: string, now: number): Promise<RunDetail | undefined> {
  const task = await store.getTask(id);
  if (task === undefined) return undefined;
  const [models, tools, events, approvals] = await Promise.all([
    store.listModelCalls(id),
    store.listToolCalls(id),
    store.listEvents(id),
    store.listApprovals({ taskId: id }),
  ]);
  const row = await rowOf(store, task, now);
  return {
    row,
    spec: task.spec,
    startingState: task.startingState,
    trace: buildTrace(task, models, tools, events),
    limits: limitsUsed(row, events, now),
    contracts: events
      .filter((e) => e.type === 'contract_accepted')
      .map((e) => {
        const d = e.data as { agent: string; contract: string; value: unknown };
        return { at: e.at, agent: d.agent, contract: d.contract, value: d.value };
      }),
    modelCalls: models.map(({ request, raw, reply, ...rest }) => ({
      ...rest,
      purged: request === null && raw === null && reply === null,
    })),
    toolCalls: tools.map((call) => ({
      ...call,
      arguments: call.arguments === null ? null : bounded(call.arguments, 4096),
      result: call.result === null ? null : bounded(call.result),
    })),
    events,
    approvals,
  };
}

/** One model call's whole record (messages, tools, raw response, reply), each part bounded for the page. */
export async function modelCallDetail(store: TaskStore, taskId: string, id: number) {
  const call = (await store.listModelCalls(taskId)).find((m) => m.id === id);
  if (call === undefined) return undefined;
  const limit = 262_144;
  return {
    ...call,
    request: bounded(call.request, limit),
    raw: bounded(call.raw, limit),
    reply: bounded(call.reply, limit),
  };
}

/**
 * What waits for a human, with its task's title and, for a deploy, the plan it would apply as the
 * deploy server described it when the agent planned it.
 */
export async function listApprovalsView(store: TaskStore, all: boolean) {
  const approvals = await store.listApprovals(all ? {} : { status: 'pending' });
  const tasks = new Map<string, { title: string; tools: ToolCallRecord[] }>();
  for (const a of approvals)
    if (!tasks.has(a.taskId))
      tasks.set(a.taskId, {
        title: (await store.getTask(a.taskId))?.title ?? '',
        tools: await store.listToolCalls(a.taskId),
      });
  return approvals.map((a) => {
    const task = tasks.get(a.taskId)!;
    const planId = (a.arguments as { planId?: unknown } | null)?.planId;
    const plan =
      a.tool === 'apply_deploy' && typeof planId === 'string'
        ? task.tools.findLast(
            (t) =>
              t.tool === 'plan_deploy' &&
              (t.result as { structured?: { planId?: unknown } } | null)?.structured?.planId === planId,
          )
        : undefined;
    const text = (plan?.result as { text?: unknown } | undefined)?.text;
    return { ...a, taskTitle: task.title, plan: typeof text === 'string' ? bounded(text, 8192).text : null };
  });
}

/** A cheap summary of what the pages show: when it changes, open pages are told to reload. */
export async function fingerprint(store: TaskStore): Promise<string> {
  const [tasks, pending, stop] = await Promise.all([
    store.listTasks({ limit: 500 }),
    store.listApprovals({ status: 'pending' }),
    store.getGlobalStop(),
  ]);
  const parts = await Promise.all(
    tasks.map(async (t) =>
      t.status === 'running'
        ? `${t.id}:running:${(await store.listEvents(t.id)).length}:${(await store.listToolCalls(t.id)).length}`
        : `${t.id}:${t.status}`,
    ),
  );
  return [...parts, pending.map((a) => a.id).join(','), stop?.at ?? ''].join('|');
}
