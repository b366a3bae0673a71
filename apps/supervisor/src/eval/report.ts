import { z } from 'zod';
import { taskStatuses } from '@keel/contracts';
import { percentile } from '../observe/stats.js';
import type { TaskStore } from '../store/taskStore.js';

const count = z.number().int().nonnegative();
const figure = z.number().nonnegative();

/** One run of one task under one configuration. */
export const evalRunSchema = z.object({
  task: z.string(),
  configuration: z.string(),
  repetition: z.number().int().positive(),
  seed: count,
  taskId: z.string(),
  status: z.enum(taskStatuses),
  limit: z.string().optional(),
  /** Each declared check: passed or not. */
  checks: z.object({
    tests: z.boolean().optional(),
    allowedPaths: z.boolean().optional(),
    review: z.boolean().optional(),
    deploy: z.boolean().optional(),
  }),
  /** The task succeeded and every check passed. */
  passed: z.boolean(),
});
export type EvalRun = z.infer<typeof evalRunSchema>;

/** A configuration's figures over all its runs (every task, every repetition). */
export const configurationFiguresSchema = z.object({
  configuration: z.string(),
  runs: count,
  passed: count,
  passRate: figure.max(1),
  p50LatencyMs: figure,
  p95LatencyMs: figure,
  meanSteps: figure,
  meanTokens: figure,
  meanCostUsd: figure,
  totalCostUsd: figure,
  /** Human interrupts: approvals asked, summed over the runs. */
  approvalsAsked: count,
  /** Reviews handed in per run, and coding rounds past the first (rework) per run. */
  meanReviewRounds: figure,
  meanReworkRounds: figure,
  /** Runs that ended on a limit. */
  limitStops: count,
});
export type ConfigurationFigures = z.infer<typeof configurationFiguresSchema>;

/** What `keel eval` writes as report.json, and what the console reads back. */
export const evalReportSchema = z.object({
  suite: z.string(),
  seed: count,
  repeat: z.number().int().positive(),
  configurations: z.array(configurationFiguresSchema),
  runs: z.array(
    evalRunSchema.extend({
      latencyMs: figure,
      steps: count,
      tokens: count,
      costUsd: figure,
      reviewRounds: count,
      reworkRounds: count,
      approvalsAsked: count,
    }),
  ),
});
export type EvalReport = z.infer<typeof evalReportSchema>;

/**
 * The report's figures, read back from the task store the runs were recorded in (summaries for
 * latency, steps, tokens, cost and approvals; the event log for review and rework rounds), so the
 * report says what the records say.
 */
export async function computeEvalReport(options: {
  suite: string;
  seed: number;
  repeat: number;
  runs: readonly EvalRun[];
  store: TaskStore;
}): Promise<EvalReport> {
  const summaries = new Map((await options.store.listTaskSummaries()).map((s) => [s.taskId, s]));
  const runs: EvalReport['runs'] = [];
  for (const run of options.runs) {
    const summary = summaries.get(run.taskId);
    const events = await options.store.listEvents(run.taskId);
    const reviewRounds = events.filter(
      (e) => e.type === 'contract_accepted' && (e.data as { contract?: string }).contract === 'review.v1',
    ).length;
    const codingRounds = events.filter(
      (e) => e.type === 'agent_started' && (e.data as { agent?: string }).agent === 'coding',
    ).length;
    runs.push({
      ...run,
      latencyMs: summary?.latencyMs ?? 0,
      steps: summary?.steps ?? 0,
      tokens: (summary?.inputTokens ?? 0) + (summary?.outputTokens ?? 0),
      costUsd: summary?.costUsd ?? 0,
      approvalsAsked: summary?.approvalsAsked ?? 0,
      reviewRounds,
      reworkRounds: Math.max(0, codingRounds - 1),
    });
  }
  const names = [...new Set(runs.map((r) => r.configuration))];
  const configurations = names.map((configuration): ConfigurationFigures => {
    const mine = runs.filter((r) => r.configuration === configuration);
    const n = mine.length;
    const sum = (pick: (r: (typeof mine)[number]) => number) => mine.reduce((t, r) => t + pick(r), 0);
    const latencies = mine.map((r) => r.latencyMs).sort((a, b) => a - b);
    const passed = mine.filter((r) => r.passed).length;
    return {
      configuration,
      runs: n,
      passed,
      passRate: n === 0 ? 0 : passed / n,
      p50LatencyMs: percentile(latencies, 50),
      p95LatencyMs: percentile(latencies, 95),
      meanSteps: sum((r) => r.steps) / n,
      meanTokens: sum((r) => r.tokens) / n,
      meanCostUsd: sum((r) => r.costUsd) / n,
      totalCostUsd: sum((r) => r.costUsd),
      approvalsAsked: sum((r) => r.approvalsAsked),
      meanReviewRounds: sum((r) => r.reviewRounds) / n,
      meanReworkRounds: sum((r) => r.reworkRounds) / n,
      limitStops: mine.filter((r) => r.status === 'limit').length,
    };
  });
  return { suite: options.suite, seed: options.seed, repeat: options.repeat, configurations, runs };
}

const ms = (v: number) => (v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`);

/** The per-configuration table for a terminal. */
export function formatEvalReport(report: EvalReport): string {
  const header = [
    'CONFIGURATION',
    'RUNS',
    'PASS',
    'P50',
    'P95',
    'STEPS',
    'TOKENS',
    'COST',
    'APPROVALS',
    'REVIEWS',
    'REWORK',
    'LIMIT STOPS',
  ];
  const rows = report.configurations.map((c) => [
    c.configuration,
    String(c.runs),
    `${(c.passRate * 100).toFixed(0)}% (${c.passed})`,
    ms(c.p50LatencyMs),
    ms(c.p95LatencyMs),
    c.meanSteps.toFixed(1),
    Math.round(c.meanTokens).toString(),
    `$${c.meanCostUsd.toFixed(4)}`,
    String(c.approvalsAsked),
    c.meanReviewRounds.toFixed(2),
    c.meanReworkRounds.toFixed(2),
    String(c.limitStops),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [
    `eval ${report.suite}: seed ${report.seed}, ${report.repeat} repetition(s) per task and configuration (per run: steps, tokens, cost are means)`,
    '',
    line(header),
    ...rows.map(line),
  ].join('\n');
}
