import { KeelError } from '@keel/kit/core';
import type { TaskAggregate, TaskStore, TaskSummary } from '../store/taskStore.js';

/** The figures of one group of finished tasks. */
export interface GroupStats {
  tasks: number;
  succeeded: number;
  /** succeeded / tasks, 0..1. */
  successRate: number;
  meanSteps: number;
  /** Task latency (creation to end), nearest-rank percentiles. */
  p50LatencyMs: number;
  p95LatencyMs: number;
  meanInputTokens: number;
  meanOutputTokens: number;
  totalTokens: number;
  meanCostUsd: number;
  totalCostUsd: number;
  /** Task cost, nearest-rank percentiles. */
  p50CostUsd: number;
  p95CostUsd: number;
  /**
   * Coefficient of variation of task cost: its standard deviation over its mean (0.5: tasks of
   * this type typically cost ±50% of the mean). Null under two tasks or at a mean of zero.
   */
  costCv: number | null;
  /** Of the input tokens, the share a provider reported as read from its prompt cache, 0..1. */
  cachedInputShare: number;
}

export interface TypeStats extends GroupStats {
  type: string;
  /** The same type in the window before, when it had tasks. */
  previous: GroupStats | null;
  /** Mean steps rose by more than the threshold against the previous window. */
  stepsJump: boolean;
}

export interface StatsReport {
  window: { since: string | null; until: string };
  previousWindow: { since: string; until: string } | null;
  /** The relative rise in mean steps that raises `stepsJump` (0.25: 25%). */
  jumpThreshold: number;
  types: TypeStats[];
  all: GroupStats;
}

/** Nearest-rank percentile of sorted values: the smallest value with at least p% at or below it. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1]!;
}

/** Sums rows into one aggregate per type (the store does this in SQL for `keel stats`). */
export function aggregateRows(rows: readonly TaskSummary[]): TaskAggregate[] {
  const groups = new Map<string, { agg: TaskAggregate; latencies: number[]; costs: number[] }>();
  for (const row of rows) {
    let group = groups.get(row.type);
    if (group === undefined) {
      group = {
        agg: {
          type: row.type,
          tasks: 0,
          succeeded: 0,
          steps: 0,
          inputTokens: 0,
          outputTokens: 0,
          cachedInputTokens: 0,
          costUsd: 0,
          latenciesMs: new Float64Array(),
          costsUsd: new Float64Array(),
        },
        latencies: [],
        costs: [],
      };
      groups.set(row.type, group);
    }
    const a = group.agg;
    a.tasks++;
    if (row.status === 'succeeded') a.succeeded++;
    a.steps += row.steps;
    a.inputTokens += row.inputTokens;
    a.outputTokens += row.outputTokens;
    a.cachedInputTokens += row.cachedInputTokens;
    a.costUsd += row.costUsd;
    group.costs.push(row.costUsd);
    if (row.latencyMs !== null) group.latencies.push(row.latencyMs);
  }
  return [...groups.values()]
    .map(({ agg, latencies, costs }) => ({
      ...agg,
      latenciesMs: Float64Array.from(latencies).sort(),
      costsUsd: Float64Array.from(costs).sort(),
    }))
    .sort((a, b) => a.type.localeCompare(b.type));
}

/** Several types' aggregates as one. */
export function mergeAggregates(type: string, aggregates: readonly TaskAggregate[]): TaskAggregate {
  const merged = (pick: (a: TaskAggregate) => Float64Array) => {
    const out = new Float64Array(aggregates.reduce((n, a) => n + pick(a).length, 0));
    let offset = 0;
    for (const a of aggregates) {
      out.set(pick(a), offset);
      offset += pick(a).length;
    }
    return out.sort();
  };
  const total = (pick: (a: TaskAggregate) => number) => aggregates.reduce((n, a) => n + pick(a), 0);
  return {
    type,
    tasks: total((a) => a.tasks),
    succeeded: total((a) => a.succeeded),
    steps: total((a) => a.steps),
    inputTokens: total((a) => a.inputTokens),
    outputTokens: total((a) => a.outputTokens),
    cachedInputTokens: total((a) => a.cachedInputTokens),
    costUsd: total((a) => a.costUsd),
    latenciesMs: merged((a) => a.latenciesMs),
    costsUsd: merged((a) => a.costsUsd),
  };
}

export function groupStats(a: TaskAggregate): GroupStats {
  const mean = (total: number) => (a.tasks === 0 ? 0 : total / a.tasks);
  return {
    tasks: a.tasks,
    succeeded: a.succeeded,
    successRate: mean(a.succeeded),
    meanSteps: mean(a.steps),
    p50LatencyMs: percentile(a.latenciesMs, 50),
    p95LatencyMs: percentile(a.latenciesMs, 95),
    meanInputTokens: mean(a.inputTokens),
    meanOutputTokens: mean(a.outputTokens),
    totalTokens: a.inputTokens + a.outputTokens,
    meanCostUsd: mean(a.costUsd),
    totalCostUsd: a.costUsd,
    p50CostUsd: percentile(a.costsUsd, 50),
    p95CostUsd: percentile(a.costsUsd, 95),
    costCv: coefficientOfVariation(a.costsUsd),
    cachedInputShare: a.inputTokens === 0 ? 0 : a.cachedInputTokens / a.inputTokens,
  };
}

/** Population standard deviation over the mean; null under two values or at a mean of zero. */
export function coefficientOfVariation(values: ArrayLike<number>): number | null {
  const n = values.length;
  if (n < 2) return null;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += values[i]!;
  const mean = sum / n;
  if (mean === 0) return null;
  let squares = 0;
  for (let i = 0; i < n; i++) squares += (values[i]! - mean) ** 2;
  return Math.sqrt(squares / n) / mean;
}

/**
 * Per task type: the window's figures, and a steps-jump flag when its mean steps exceed the previous
 * window's by more than `jumpThreshold` (with at least `minTasks` tasks on both sides) — a prompt
 * regression often shows there before it shows in success rates.
 */
export function computeStats(options: {
  current: readonly TaskAggregate[];
  previous: readonly TaskAggregate[];
  window: StatsReport['window'];
  previousWindow: StatsReport['previousWindow'];
  jumpThreshold?: number;
  minTasks?: number;
}): StatsReport {
  const jumpThreshold = options.jumpThreshold ?? 0.25;
  const minTasks = options.minTasks ?? 5;
  const previous = new Map(options.previous.map((a) => [a.type, a]));
  const types = [...options.current]
    .sort((a, b) => a.type.localeCompare(b.type))
    .map((aggregate): TypeStats => {
      const now = groupStats(aggregate);
      const before = previous.get(aggregate.type);
      const prev = before === undefined ? null : groupStats(before);
      return {
        type: aggregate.type,
        ...now,
        previous: prev,
        stepsJump:
          prev !== null &&
          prev.tasks >= minTasks &&
          now.tasks >= minTasks &&
          now.meanSteps > prev.meanSteps * (1 + jumpThreshold),
      };
    });
  return {
    window: options.window,
    previousWindow: options.previousWindow,
    jumpThreshold,
    types,
    all: groupStats(mergeAggregates('all', options.current)),
  };
}

/**
 * `keel stats` from the store: the tasks created since `since` (every task when it is undefined),
 * against the window as long just before it. The CLI and the console both read stats this way.
 */
export async function readStats(
  store: TaskStore,
  options: { now: Date; since?: Date | undefined; type?: string | undefined; jumpThreshold?: number },
): Promise<StatsReport> {
  const { now, since } = options;
  const type = options.type === undefined ? {} : { type: options.type };
  const previousSince =
    since === undefined ? undefined : new Date(since.getTime() - (now.getTime() - since.getTime()));
  const [current, previous] = await Promise.all([
    store.aggregateTaskSummaries({ ...type, ...(since === undefined ? {} : { since: since.toISOString() }) }),
    since === undefined || previousSince === undefined
      ? Promise.resolve([])
      : store.aggregateTaskSummaries({
          ...type,
          since: previousSince.toISOString(),
          until: since.toISOString(),
        }),
  ]);
  return computeStats({
    current,
    previous,
    window: { since: since?.toISOString() ?? null, until: now.toISOString() },
    previousWindow:
      since === undefined || previousSince === undefined
        ? null
        : { since: previousSince.toISOString(), until: since.toISOString() },
    ...(options.jumpThreshold === undefined ? {} : { jumpThreshold: options.jumpThreshold }),
  });
}

/** `7d`, `24h`, `30m` before `now`, or an ISO date/time. */
export function parseSince(value: string, now: Date): Date {
  const relative = /^(\d+)([dhm])$/.exec(value);
  if (relative !== null) {
    const unit = { d: 86_400_000, h: 3_600_000, m: 60_000 }[relative[2] as 'd' | 'h' | 'm'];
    return new Date(now.getTime() - Number(relative[1]) * unit);
  }
  const parsed = Date.parse(value);
  if (Number.isNaN(parsed) || !/^\d{4}-\d{2}-\d{2}/.test(value))
    throw new KeelError('INVALID_ARGUMENT', `--since '${value}' is neither a duration nor a date`, {
      hint: 'use 7d, 24h, 30m, or an ISO date such as 2026-11-01',
    });
  return new Date(parsed);
}

const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
const dur = (v: number) => (v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`);

export function formatStats(report: StatsReport): string {
  const header = [
    'TYPE',
    'TASKS',
    'SUCCESS',
    'STEPS',
    'P50',
    'P95',
    'TOKENS/TASK',
    'CACHED',
    'COST/TASK',
    'COST P50',
    'COST P95',
    'COST CV',
    'STEPS VS PREV',
  ];
  const money = (g: GroupStats) => [
    `$${g.meanCostUsd.toFixed(4)}`,
    `$${g.p50CostUsd.toFixed(4)}`,
    `$${g.p95CostUsd.toFixed(4)}`,
    g.costCv === null ? '-' : g.costCv.toFixed(2),
  ];
  const rows = report.types.map((t) => [
    t.type,
    String(t.tasks),
    pct(t.successRate),
    t.meanSteps.toFixed(1),
    dur(t.p50LatencyMs),
    dur(t.p95LatencyMs),
    Math.round(t.meanInputTokens + t.meanOutputTokens).toString(),
    pct(t.cachedInputShare),
    ...money(t),
    t.previous === null
      ? '-'
      : `${t.previous.meanSteps.toFixed(1)} → ${t.meanSteps.toFixed(1)}${t.stepsJump ? '  JUMP' : ''}`,
  ]);
  const a = report.all;
  rows.push([
    'all',
    String(a.tasks),
    pct(a.successRate),
    a.meanSteps.toFixed(1),
    dur(a.p50LatencyMs),
    dur(a.p95LatencyMs),
    Math.round(a.meanInputTokens + a.meanOutputTokens).toString(),
    pct(a.cachedInputShare),
    ...money(a),
    '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  const since = report.window.since === null ? 'all time' : `since ${report.window.since}`;
  const jumps = report.types.filter((t) => t.stepsJump);
  return [
    `tasks ${since} (until ${report.window.until})${report.previousWindow ? `; previous window from ${report.previousWindow.since}` : ''}`,
    '',
    line(header),
    ...rows.map(line),
    ...(jumps.length === 0
      ? []
      : [
          '',
          ...jumps.map(
            (t) =>
              `JUMP ${t.type}: mean steps ${t.previous!.meanSteps.toFixed(1)} → ${t.meanSteps.toFixed(1)} (more than +${Math.round(report.jumpThreshold * 100)}% against the previous window)`,
          ),
        ]),
  ].join('\n');
}
