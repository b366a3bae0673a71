import type { RegisterCommand } from './context.js';

export const registerStats: RegisterCommand = (program, ctx) => {
  program
    .command('stats')
    .description(
      'per task type: success rate, mean steps, p50/p95 latency, tokens and the cached share of input, cost (mean, p50/p95, coefficient of variation), with a flag when mean steps jump against the previous window',
    )
    .addOption(ctx.configOption())
    .option('--type <type>', 'only tasks of this type')
    .option('--since <when>', 'the window: 7d, 24h, 30m or an ISO date; the previous window is as long', '7d')
    .option('--all', 'every task ever recorded (no previous window)', false)
    .option('--jump <ratio>', 'the rise in mean steps that is flagged (0.25: +25%)', parseFloat, 0.25)
    .option('--json', 'the report as JSON', false)
    .addHelpText(
      'after',
      '\nWith OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_METRICS_EXPORTER=otlp) set, the same figures are also exported once as OTLP gauges.\n',
    )
    .action(
      async (opts: {
        config?: string;
        type?: string;
        since: string;
        all: boolean;
        jump: number;
        json: boolean;
      }) => {
        await ctx.withStore(opts.config, async (_loaded, store) => {
          const now = new Date(ctx.io.clock.now());
          const [{ formatStats, parseSince, readStats }, { exportStatsMetrics }] = await Promise.all([
            import('../../observe/stats.js'),
            import('../../observe/metrics.js'),
          ]);
          const report = await readStats(store, {
            now,
            since: opts.all ? undefined : parseSince(opts.since, now),
            type: opts.type,
            jumpThreshold: opts.jump,
          });
          ctx.out(opts.json ? JSON.stringify(report, null, 2) : formatStats(report));
          const exported = await exportStatsMetrics(report, {
            env: ctx.io.env,
            serviceVersion: ctx.io.version,
          });
          if (exported.exported && !opts.json)
            ctx.io.stderr.write(`exported as OTLP metrics to ${exported.url}\n`);
        });
      },
    );
};
