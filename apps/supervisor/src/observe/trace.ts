import type { EventRecord, ModelCallRecord, TaskRecord, ToolCallRecord } from '../store/taskStore.js';
import { callLabel } from './labels.js';
import { timeline } from './timeline.js';

/** One span of a task's trace, rebuilt from the store. Times are ms from the task's start. */
export interface TraceSpan {
  /**
   * `setup`: connecting the servers and reading the starting state, before the first agent;
   * `wait`: the task waiting for a person (`await_approval`), from the request to the decision.
   */
  kind: 'task' | 'setup' | 'agent' | 'chat' | 'tool' | 'server' | 'wait';
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
  for (const [i, event] of events.entries()) {
    const data = (event.data ?? {}) as Record<string, unknown>;
    // A resumed task connects its servers again: from what came before (a decision) to the resume.
    if (event.type === 'task_resumed' && i > 0) {
      const startMs = Math.max(0, offset(events[i - 1]!.at));
      root.children.push({
        kind: 'setup',
        name: 'setup',
        startMs,
        durationMs: Math.max(0, offset(event.at) - startMs),
        outcome: 'ok',
        attributes: { resume: true },
        children: [],
      });
    } else if (event.type === 'task_started')
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
  root.children.push(...waits(events, offset));
  for (const open of agents)
    if (!open.closed) open.span.durationMs = Math.max(0, end(open.span) - open.span.startMs);
  root.durationMs = task.endedAt === null ? end(root) : Math.max(offset(task.endedAt), end(root));
  // A request nobody has answered yet waits until the last thing the task recorded.
  for (const span of root.children)
    if (span.kind === 'wait' && span.outcome === 'waiting')
      span.durationMs = Math.max(0, root.durationMs - span.startMs);
  const order = (span: TraceSpan) => {
    span.children.sort((a, b) => a.startMs - b.startMs);
    span.children.forEach(order);
  };
  order(root);
  return root;
}

/**
 * One `await_approval` span per request for a person (an irreversible call's approval, or an
 * escalation): from the request to the decision, or still open.
 */
function waits(events: readonly EventRecord[], offset: (iso: string) => number): TraceSpan[] {
  const spans = new Map<string, TraceSpan>();
  for (const event of events) {
    const data = (event.data ?? {}) as Record<string, unknown>;
    const id = typeof data['approval'] === 'string' ? data['approval'] : undefined;
    if (id === undefined) continue;
    if (event.type === 'approval_requested' || event.type === 'escalation_requested') {
      spans.set(id, {
        kind: 'wait',
        name: 'await_approval',
        startMs: offset(event.at),
        durationMs: 0,
        outcome: 'waiting',
        attributes: {
          approval: id,
          kind: event.type === 'approval_requested' ? 'approval' : 'escalation',
          ...(typeof data['tool'] === 'string' ? { tool: data['tool'] } : {}),
        },
        children: [],
      });
      continue;
    }
    const span = spans.get(id);
    const decision =
      event.type === 'approval_granted'
        ? 'approved'
        : event.type === 'approval_denied'
          ? 'denied'
          : event.type === 'escalation_decided'
            ? typeof data['action'] === 'string'
              ? data['action']
              : 'decided'
            : undefined;
    if (span === undefined || decision === undefined || span.outcome !== 'waiting') continue;
    span.durationMs = Math.max(0, offset(event.at) - span.startMs);
    span.outcome = 'ok';
    span.attributes['decision'] = decision;
    if (typeof data['by'] === 'string') span.attributes['by'] = data['by'];
  }
  return [...spans.values()];
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
      return a['resume'] === true
        ? 'resume: connect the servers, read the records'
        : 'connect the servers, record the starting state';
    case 'task':
      return `${a['type']}, ${a['mode']}, ${a['status']}; ${a['steps']} steps, ${a['inputTokens']}+${a['outputTokens']} tokens, $${Number(a['costUsd']).toFixed(4)}`;
    case 'agent':
      return `#${a['invocation']} ${span.outcome === 'ok' ? `→ ${a['contract'] ?? 'done'}` : `${span.outcome}${a['stop'] ? `: ${a['stop']}` : ''}`}`;
    case 'chat':
      return `step ${a['step']}, ${a['inputTokens']}+${a['outputTokens']} tok, $${Number(a['costUsd']).toFixed(4)}${a['asked'] ? ` → ${a['asked']}` : ''}${a['error'] ? `  ERROR ${a['error']}` : ''}`;
    case 'tool':
      return `${callLabel(Number(a['step']), Number(a['callIndex']))}, ${span.outcome}, ${a['resultBytes']} B${a['irreversible'] ? ', irreversible' : ''}`;
    case 'server':
      return `${a['service']}, ${span.outcome}`;
    case 'wait':
      return `${a['approval']}${a['tool'] ? ` (${a['tool']})` : ''}: ${span.outcome === 'ok' ? `${a['decision']}${a['by'] ? ` by ${a['by']}` : ''}` : 'waiting for a person'}`;
  }
}

/** Every wait for a person in the tree, as the timeline draws them short. */
export function waitsOf(root: TraceSpan): Array<{ startMs: number; endMs: number }> {
  const found: Array<{ startMs: number; endMs: number }> = [];
  const walk = (span: TraceSpan) => {
    if (span.kind === 'wait') found.push({ startMs: span.startMs, endMs: span.startMs + span.durationMs });
    span.children.forEach(walk);
  };
  walk(root);
  return found;
}

/**
 * The trace as an indented waterfall: offset, duration, a bar placed on the task's timeline (its
 * waits for a person drawn short when they would take most of it), and the span with its tokens,
 * cost and outcome.
 */
export function formatTrace(root: TraceSpan, width = 32): string {
  const place = timeline(root.durationMs, waitsOf(root));
  const lines: string[] = [];
  const walk = (span: TraceSpan, depth: number) => {
    const from = Math.min(width - 1, Math.floor(place(span.startMs) * width));
    const length = Math.max(
      1,
      Math.round((place(span.startMs + span.durationMs) - place(span.startMs)) * width),
    );
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
