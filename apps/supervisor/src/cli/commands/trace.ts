import { readFileSync } from 'node:fs';
import path from 'node:path';
import { requireTask, type RegisterCommand } from './context.js';

export const registerTrace: RegisterCommand = (program, ctx) => {
  program
    .command('trace')
    .description("a task's span tree from the store: agents, model calls, tool calls, as a waterfall")
    .argument('<task>', 'task id (from keel runs)')
    .addOption(ctx.configOption())
    .option('--json', 'the span tree as JSON', false)
    .option(
      '--otlp <file>',
      "join the servers' spans from an OTLP/JSON export (one ExportTraceServiceRequest per line, e.g. a collector's file exporter)",
    )
    .action(async (id: string, opts: { config?: string; json: boolean; otlp?: string }) => {
      await ctx.withStore(opts.config, async (_loaded, store) => {
        const task = await requireTask(store, id);
        const [models, tools, events] = await Promise.all([
          store.listModelCalls(id),
          store.listToolCalls(id),
          store.listEvents(id),
        ]);
        const [{ joinServerSpans, readOtlpSpans }, { buildTrace, formatTrace }] = await Promise.all([
          import('../../observe/otlpJoin.js'),
          import('../../observe/trace.js'),
        ]);
        const trace = buildTrace(task, models, tools, events);
        if (opts.otlp !== undefined) {
          const spans = readOtlpSpans(readFileSync(path.resolve(ctx.io.cwd, opts.otlp), 'utf8'));
          const joined = joinServerSpans(trace, id, spans, Date.parse(task.createdAt));
          if (!opts.json) ctx.io.stderr.write(`joined ${joined} server span(s) from ${opts.otlp}\n`);
        }
        ctx.out(opts.json ? JSON.stringify(trace, null, 2) : formatTrace(trace));
      });
    });
};
