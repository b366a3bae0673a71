import { buildTrace, formatTrace } from '../../observe/trace.js';
import { requireTask, type RegisterCommand } from './context.js';

export const registerTrace: RegisterCommand = (program, ctx) => {
  program
    .command('trace')
    .description("a task's span tree from the store: agents, model calls, tool calls, as a waterfall")
    .argument('<task>', 'task id (from keel runs)')
    .addOption(ctx.configOption())
    .option('--json', 'the span tree as JSON', false)
    .action(async (id: string, opts: { config?: string; json: boolean }) => {
      await ctx.withStore(opts.config, async (_loaded, store) => {
        const task = await requireTask(store, id);
        const [models, tools, events] = await Promise.all([
          store.listModelCalls(id),
          store.listToolCalls(id),
          store.listEvents(id),
        ]);
        const trace = buildTrace(task, models, tools, events);
        ctx.out(opts.json ? JSON.stringify(trace, null, 2) : formatTrace(trace));
      });
    });
};
