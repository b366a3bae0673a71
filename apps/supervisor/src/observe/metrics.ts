import type { GroupStats, StatsReport } from './stats.js';

/** Whether the standard OTEL_* variables ask for metric export (OTLP over HTTP). */
export function metricsRequested(env: NodeJS.ProcessEnv): boolean {
  if (env['OTEL_SDK_DISABLED'] === 'true') return false;
  const exporter = env['OTEL_METRICS_EXPORTER'];
  if (exporter !== undefined)
    return exporter
      .split(',')
      .map((s) => s.trim())
      .includes('otlp');
  return Boolean(env['OTEL_EXPORTER_OTLP_ENDPOINT'] || env['OTEL_EXPORTER_OTLP_METRICS_ENDPOINT']);
}

/** The OTLP/HTTP metrics URL the variables name (the signal-specific one is used as it is). */
export function metricsUrl(env: NodeJS.ProcessEnv): string {
  const specific = env['OTEL_EXPORTER_OTLP_METRICS_ENDPOINT'];
  if (specific) return specific;
  const base = env['OTEL_EXPORTER_OTLP_ENDPOINT'] || 'http://localhost:4318';
  return `${base.replace(/\/+$/, '')}/v1/metrics`;
}

/** The gauges `keel stats` exports, by name: what each reads from a group's figures. */
export const statsGauges: ReadonlyArray<{
  name: string;
  unit: string;
  description: string;
  value: (g: GroupStats) => number;
}> = [
  {
    name: 'keel.tasks.count',
    unit: '{task}',
    description: 'finished tasks in the window',
    value: (g) => g.tasks,
  },
  {
    name: 'keel.tasks.success_rate',
    unit: '1',
    description: 'succeeded / finished',
    value: (g) => g.successRate,
  },
  {
    name: 'keel.tasks.steps.mean',
    unit: '{step}',
    description: 'mean model calls per task',
    value: (g) => g.meanSteps,
  },
  {
    name: 'keel.tasks.latency.p50',
    unit: 'ms',
    description: 'median task latency',
    value: (g) => g.p50LatencyMs,
  },
  {
    name: 'keel.tasks.latency.p95',
    unit: 'ms',
    description: '95th percentile task latency',
    value: (g) => g.p95LatencyMs,
  },
  {
    name: 'keel.tasks.tokens.mean',
    unit: '{token}',
    description: 'mean input + output tokens per task',
    value: (g) => g.meanInputTokens + g.meanOutputTokens,
  },
  {
    name: 'keel.tasks.cost.mean',
    unit: 'USD',
    description: 'mean cost per task',
    value: (g) => g.meanCostUsd,
  },
  {
    name: 'keel.tasks.cost.p50',
    unit: 'USD',
    description: 'median task cost',
    value: (g) => g.p50CostUsd,
  },
  {
    name: 'keel.tasks.cost.p95',
    unit: 'USD',
    description: '95th percentile task cost',
    value: (g) => g.p95CostUsd,
  },
  {
    // A gauge has a value or none; "not enough tasks" is 0, as a cost that does not vary.
    name: 'keel.tasks.cost.cv',
    unit: '1',
    description: 'coefficient of variation of task cost (standard deviation / mean)',
    value: (g) => g.costCv ?? 0,
  },
  {
    name: 'keel.tasks.tokens.cached_share',
    unit: '1',
    description: 'share of input tokens read from a provider prompt cache',
    value: (g) => g.cachedInputShare,
  },
];

/**
 * Exports a stats report once as OTLP/HTTP gauges — one data point per task type
 * (`keel.task.type`), plus `keel.tasks.steps.jump` (1 when mean steps jumped) — and shuts the
 * provider down. The SDK is loaded only when the variables ask for it.
 */
export async function exportStatsMetrics(
  report: StatsReport,
  options: { env: NodeJS.ProcessEnv; serviceVersion: string },
): Promise<{ exported: boolean; url?: string }> {
  if (!metricsRequested(options.env)) return { exported: false };
  const [
    { MeterProvider, PeriodicExportingMetricReader },
    { OTLPMetricExporter },
    { resourceFromAttributes },
  ] = await Promise.all([
    import('@opentelemetry/sdk-metrics'),
    import('@opentelemetry/exporter-metrics-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  const url = metricsUrl(options.env);
  const reader = new PeriodicExportingMetricReader({
    exporter: new OTLPMetricExporter({ url }),
    // Exported once at shutdown below; the interval only has to outlast the command.
    exportIntervalMillis: 3_600_000,
  });
  const provider = new MeterProvider({
    resource: resourceFromAttributes({
      'service.name': options.env['OTEL_SERVICE_NAME'] ?? 'keel',
      'service.version': options.serviceVersion,
    }),
    readers: [reader],
  });
  const meter = provider.getMeter('@keel/supervisor', options.serviceVersion);
  for (const gauge of statsGauges)
    meter
      .createObservableGauge(gauge.name, { unit: gauge.unit, description: gauge.description })
      .addCallback((result) => {
        for (const t of report.types) result.observe(gauge.value(t), { 'keel.task.type': t.type });
      });
  meter
    .createObservableGauge('keel.tasks.steps.jump', {
      unit: '1',
      description: 'mean steps rose past the threshold against the previous window',
    })
    .addCallback((result) => {
      for (const t of report.types) result.observe(t.stepsJump ? 1 : 0, { 'keel.task.type': t.type });
    });
  // Shutting the reader down collects and exports once.
  await provider.shutdown();
  return { exported: true, url };
}
