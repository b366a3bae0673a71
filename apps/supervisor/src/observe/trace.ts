import type { EventRecord, ModelCallRecord, TaskRecord, ToolCallRecord } from '../store/taskStore.js';

/** One span of a task's trace, rebuilt from the store. Times are ms from the task's start. */
export interface TraceSpan {
  /** `setup`: connecting the servers and reading the starting state, before the first agent. */
  kind: 'task' | 'setup' | 'agent' | 'chat' | 'tool' | 'server';
  name: string;
  startMs: number;
  durationMs: number;
  /** `ok`, or why not: an error code, a stop status, `refused`. */
  outcome: string;
  attributes: Record<string, string | number | boolean>;
  children: TraceSpan[];
}

const at = (iso: string) => Date.parse(iso);

interface OpenAgent {
  span: TraceSpan;
  agent: string;
  invocation: number;
  started: number;
  closed: boolean;
}

/**
 * The span tree of a task — task → agent invocations → model calls → the tool calls each asked
 * for — from the records alone: a call's span starts at its `startedAt` and lasts its latency; an
 * agent invocation spans its `agent_started` and `agent_finished` events. The orchestrator's own
 * calls (the test runs) hang under the task.
 */
export function buildTrace(
  task: TaskRecord,
  models: readonly ModelCallRecord[],
  tools: readonly ToolCallRecord[],
  events: readonly EventRecord[],
): TraceSpan {
  const origin = at(task.createdAt);
  const offset = (iso: string) => at(iso) - origin;
  const root: TraceSpan = {
    kind: 'task',
    name: `task ${task.id}`,
    startMs: 0,
    durationMs: 0,
    outcome: task.status === 'succeeded' ? 'ok' : task.status,
    attributes: {
      type: task.type,
      mode: task.mode,
      status: task.status,
      steps: task.run?.steps ?? models.length,
      inputTokens: task.run?.tokens.input ?? sum(models, (m) => m.inputTokens),
      outputTokens: task.run?.tokens.output ?? sum(models, (m) => m.outputTokens),
      costUsd: task.run?.costUsd ?? sum(models, (m) => m.costUsd),
    },
    children: [],
  };

  const agents: OpenAgent[] = [];
  for (const event of events) {
    const data = (event.data ?? {}) as Record<string, unknown>;
    if (event.type === 'task_started')
      root.children.push({
        kind: 'setup',
        name: 'setup',
        startMs: 0,
        durationMs: Math.max(0, offset(event.at)),
        outcome: 'ok',
        attributes: {},
        children: [],
      });
    else if (event.type === 'agent_started') {
      const span: TraceSpan = {
        kind: 'agent',
        name: `invoke_agent ${String(data['agent'])}`,
        startMs: offset(event.at),
        durationMs: 0,
        outcome: 'running',
        attributes: { agent: String(data['agent']), invocation: Number(data['invocation']) },
        children: [],
      };
      agents.push({
        span,
        agent: String(data['agent']),
        invocation: Number(data['invocation']),
        started: at(event.at),
        closed: false,
      });
      root.children.push(span);
    } else if (event.type === 'agent_finished') {
      const open = agents.find(
        (a) => !a.closed && a.agent === data['agent'] && a.invocation === Number(data['invocation']),
      );
      if (open === undefined) continue;
      open.closed = true;
      open.span.durationMs = Math.max(0, offset(event.at) - open.span.startMs);
      const stop = data['stop'] as { status?: string; message?: string } | undefined;
      open.span.outcome = stop === undefined ? 'ok' : (stop.status ?? 'stopped');
      if (typeof data['contract'] === 'string') open.span.attributes['contract'] = data['contract'];
      if (stop?.message !== undefined) open.span.attributes['stop'] = stop.message;
    }
  }

  // A model call belongs to the latest invocation of its agent that had started by then.
  const chats = new Map<number, TraceSpan>();
  for (const call of models) {
    const startMs = offset(call.startedAt);
    const reply = call.reply as { toolCalls?: Array<{ name: string }>; finishReason?: string } | null;
    const span: TraceSpan = {
      kind: 'chat',
      name: `chat ${call.requestedModel}`,
      startMs,
      durationMs: call.latencyMs,
      outcome: call.error === null ? 'ok' : 'error',
      attributes: {
        step: call.step,
        agent: call.agent,
        provider: call.provider,
        inputTokens: call.inputTokens,
        outputTokens: call.outputTokens,
        costUsd: call.costUsd,
        ...(reply?.toolCalls === undefined ? {} : { asked: reply.toolCalls.map((c) => c.name).join(', ') }),
        ...(call.error === null ? {} : { error: call.error }),
      },
      children: [],
    };
    chats.set(call.step, span);
    const owner = agents.filter((a) => a.agent === call.agent && a.started <= at(call.startedAt)).at(-1);
    (owner?.span.children ?? root.children).push(span);
  }

  for (const call of tools) {
    const span: TraceSpan = {
      kind: 'tool',
      name: `execute_tool ${call.server ? `${call.server}.` : ''}${call.tool}`,
      startMs: offset(call.startedAt),
      durationMs: call.latencyMs,
      outcome: call.outcome === 'ok' ? 'ok' : (call.errorCode ?? call.outcome),
      attributes: {
        step: call.step,
        callIndex: call.callIndex,
        agent: call.agent,
        resultBytes: call.resultBytes,
        ...(call.irreversible ? { irreversible: true } : {}),
      },
      children: [],
    };
    const parent = call.agent === 'orchestrator' ? undefined : chats.get(call.step);
    (parent?.children ?? root.children).push(span);
  }

  const end = (span: TraceSpan): number =>
    Math.max(span.startMs + span.durationMs, ...span.children.map(end));
  for (const open of agents)
    if (!open.closed) open.span.durationMs = Math.max(0, end(open.span) - open.span.startMs);
  root.durationMs = task.endedAt === null ? end(root) : Math.max(offset(task.endedAt), end(root));
  const order = (span: TraceSpan) => {
    span.children.sort((a, b) => a.startMs - b.startMs);
    span.children.forEach(order);
  };
  order(root);
  return root;
}

function sum<T>(items: readonly T[], pick: (item: T) => number): number {
  return items.reduce((total, item) => total + pick(item), 0);
}

const ms = (value: number) =>
  value >= 10_000 ? `${(value / 1000).toFixed(1)} s` : `${value.toFixed(value < 10 ? 1 : 0)} ms`;

function details(span: TraceSpan): string {
  const a = span.attributes;
  switch (span.kind) {
    case 'setup':
      return 'connect the servers, record the starting state';
    case 'task':
      return `${a['type']}, ${a['mode']}, ${a['status']}; ${a['steps']} steps, ${a['inputTokens']}+${a['outputTokens']} tokens, $${Number(a['costUsd']).toFixed(4)}`;
    case 'agent':
      return `#${a['invocation']} ${span.outcome === 'ok' ? `→ ${a['contract'] ?? 'done'}` : `${span.outcome}${a['stop'] ? `: ${a['stop']}` : ''}`}`;
    case 'chat':
      return `step ${a['step']}, ${a['inputTokens']}+${a['outputTokens']} tok, $${Number(a['costUsd']).toFixed(4)}${a['asked'] ? ` → ${a['asked']}` : ''}${a['error'] ? `  ERROR ${a['error']}` : ''}`;
    case 'tool':
      return `${span.outcome}, ${a['resultBytes']} B${a['irreversible'] ? ', irreversible' : ''}`;
    case 'server':
      return `${a['service']}, ${span.outcome}`;
  }
}

/**
 * The trace as an indented waterfall: offset, duration, a bar placed on the task's timeline, and
 * the span with its tokens, cost and outcome.
 */
export function formatTrace(root: TraceSpan, width = 32): string {
  const total = Math.max(root.durationMs, 1);
  const lines: string[] = [];
  const walk = (span: TraceSpan, depth: number) => {
    const from = Math.min(width - 1, Math.floor((span.startMs / total) * width));
    const length = Math.max(1, Math.round((span.durationMs / total) * width));
    const bar = `${' '.repeat(from)}${'█'.repeat(Math.min(length, width - from))}`.padEnd(width);
    lines.push(
      `${`+${ms(span.startMs)}`.padStart(10)} ${ms(span.durationMs).padStart(9)} |${bar}| ${'  '.repeat(depth)}${span.name}  ${details(span)}`,
    );
    for (const child of span.children) walk(child, depth + 1);
  };
  walk(root, 0);
  return [
    `${'START'.padStart(10)} ${'DURATION'.padStart(9)} ${'TIMELINE'.padEnd(width + 2)} SPAN`,
    ...lines,
  ].join('\n');
}
