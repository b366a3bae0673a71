import path from 'node:path';
import { streamProgress } from '../progress.js';
import { requireTask, type RegisterCommand } from './context.js';

export const registerReplay: RegisterCommand = (program, ctx) => {
  program
    .command('replay')
    .description(
      're-run a recorded task with the replay model (no model is called) on copies of its roots, and report the first divergence or "identical"',
    )
    .argument('<task>', 'task id (from keel runs)')
    .addOption(ctx.configOption())
    .option(
      '--dir <dir>',
      "where to build the replay's copies and store (default: a temporary directory, removed after)",
    )
    .option('--keep', "keep the replay's copies and store", false)
    .option('--json', 'the report as JSON', false)
    .option('-v, --verbose', 'progress lines', false)
    .addHelpText(
      'after',
      '\nExit code: 0 when the replay is identical, 1 when it diverged, 2 on bad usage.\n',
    )
    .action(
      async (
        id: string,
        opts: { config?: string; dir?: string; keep: boolean; json: boolean; verbose: boolean },
      ) => {
        await ctx.withStore(opts.config, async (loaded, store) => {
          await requireTask(store, id);
          // The engine and the model adapters load only for the command that runs them.
          const { formatReplay, replayTask } = await import('../../replay/replay.js');
          const report = await replayTask({
            store,
            taskId: id,
            loaded,
            env: ctx.io.env,
            keep: opts.keep,
            ...(opts.dir === undefined ? {} : { dir: path.resolve(ctx.io.cwd, opts.dir) }),
            ...(opts.verbose ? { progress: streamProgress(ctx.io.stderr) } : {}),
          });
          ctx.out(opts.json ? JSON.stringify(report, null, 2) : formatReplay(report));
          if (!report.identical) ctx.setExitCode(1);
        });
      },
    );
};
