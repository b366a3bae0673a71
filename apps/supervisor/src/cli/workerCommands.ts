import path from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { KeelError } from '@keel/kit/core';
import type { CliContext } from './cliContext.js';

const positive = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive integer`);
  return n;
};

const needsPostgres = (what: string) =>
  new KeelError('PRECONDITION_FAILED', `${what} needs the shared PostgreSQL task store`, {
    hint: 'set KEEL_DATABASE_URL=postgres://… (or store: in keel.config.yaml); with the SQLite store use keel run',
  });

/** submit and worker: tasks through a queue on the shared PostgreSQL store, taken by any number of workers. */
export function registerWorkerCommands(program: Command, ctx: CliContext): void {
  program
    .command('submit')
    .description('queue a task for the keel workers (needs the PostgreSQL store); prints its id')
    .argument('<taskfile>', 'the task file, as for keel run')
    .addOption(ctx.configOption())
    .action(async (taskfile: string, opts: { config?: string }) => {
      const [{ loadTaskFile }, { storeLocation }, { newTaskId }] = await Promise.all([
        import('../task/taskFile.js'),
        import('../store/openStore.js'),
        import('../engine/taskId.js'),
      ]);
      const task = loadTaskFile(path.resolve(ctx.io.cwd, taskfile));
      await ctx.withStore(opts.config, async (loaded, store) => {
        const location = storeLocation(loaded, ctx.io.env);
        if (location.kind !== 'postgres') throw needsPostgres('keel submit');
        const { openQueue, enqueue } = await import('../workers/worker.js');
        const now = new Date(ctx.io.clock.now());
        const id = newTaskId(now);
        await store.createTask({
          id,
          type: task.type,
          title: task.title,
          mode: task.mode,
          status: 'queued',
          createdAt: now.toISOString(),
          endedAt: null,
          configHash: loaded.hash,
          spec: task,
          startingState: null,
          run: null,
        });
        await store.appendEvent(id, 'task_queued', { type: task.type }, now);
        const boss = await openQueue(location.url);
        try {
          await enqueue(boss, { taskId: id, action: 'run', reason: 'submitted' });
        } finally {
          await boss.stop({ graceful: false });
        }
        ctx.out(id);
      });
    });

  program
    .command('worker')
    .description(
      'take queued tasks and run them (needs the PostgreSQL store); stops on SIGINT/SIGTERM, cancelling its tasks',
    )
    .addOption(ctx.configOption())
    .option('--concurrency <n>', 'tasks at once', positive('--concurrency'), 1)
    .option('--id <name>', "this worker's name in owner records (default: host:pid)")
    .option(
      '--fresh-servers',
      "start each task's servers anew rather than reuse the last task's (for servers that keep state between calls)",
      false,
    )
    .option(
      '--heartbeat-ms <ms>',
      'how often it tells the store it is alive',
      positive('--heartbeat-ms'),
      2000,
    )
    .option('-q, --quiet', 'no progress lines', false)
    .action(
      async (opts: {
        config?: string;
        concurrency: number;
        id?: string;
        freshServers: boolean;
        heartbeatMs: number;
        quiet: boolean;
      }) => {
        const [{ loadConfig }, { storeLocation }] = await Promise.all([
          import('../config/load.js'),
          import('../store/openStore.js'),
        ]);
        const loaded = loadConfig(ctx.findConfig(opts.config));
        const location = storeLocation(loaded, ctx.io.env);
        if (location.kind !== 'postgres') throw needsPostgres('keel worker');
        await ctx.withStore(opts.config, async (_loaded, store) => {
          const { openQueue, runWorker } = await import('../workers/worker.js');
          const boss = await openQueue(location.url);
          try {
            await runWorker({
              loaded,
              store,
              boss,
              id: opts.id ?? `${(await import('node:os')).hostname()}:${process.pid}`,
              concurrency: opts.concurrency,
              warmServers: !opts.freshServers,
              heartbeatMs: opts.heartbeatMs,
              reapMs: opts.heartbeatMs,
              log: (line) => ctx.io.stderr.write(`[worker] ${line}\n`),
              stop: ctx.io.kill,
              env: ctx.io.env,
              tracer: ctx.io.tracer,
              clock: ctx.io.clock,
              ...(opts.quiet ? {} : { progress: ctx.runOptions(false).progress! }),
            });
          } finally {
            await boss.stop({ graceful: false });
          }
        });
      },
    );
}
