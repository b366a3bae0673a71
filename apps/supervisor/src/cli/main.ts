import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { KeelError } from '@keel/kit/core';
import type { TaskRunV1, TaskStatus } from '@keel/contracts';
import type { LoadedConfig } from '../config/load.js';
import { ignoreKeelFiles, keelIgnored } from './gitignore.js';
import type { ApprovalRecord, TaskStore } from '../store/taskStore.js';
import { streamProgress } from './progress.js';
import { howToAnswer, registerControlCommands } from './control.js';
import { registerWorkerCommands } from './workerCommands.js';
import { registerConsoleCommand } from './console.js';
import { userInfo } from 'node:os';
import { exampleTask, modelPresets, starterConfig, type ModelPresetName } from './starter.js';
import { observabilityCommands } from './commands/index.js';
import { requireTask } from './commands/context.js';
import { createInvocation, discoverConfig, formatCommands, type Invocation } from './invocation.js';
import { exitCodes, type CliContext, type CliIo } from './cliContext.js';

export { exitCodes } from './cliContext.js';
export type { CliContext, CliIo } from './cliContext.js';

const positiveInt = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive integer`);
  return n;
};

function findConfig(cwd: string, given: string | undefined, env: NodeJS.ProcessEnv): string {
  const found = given === undefined ? discoverConfig(cwd, env) : path.resolve(cwd, given);
  if (found !== undefined) return found;
  throw new KeelError('NOT_FOUND', `no keel.config.yaml in ${cwd}`, {
    hint: 'run `keel init` to write one, pass --config FILE, or try `keel demo`',
  });
}

/**
 * The config and the task store it names. Loaded on use: a verb that needs neither (`--version`,
 * `help`) never loads the config schema or a database driver.
 */
async function openStoreOf(
  file: string,
  env: NodeJS.ProcessEnv,
): Promise<{ loaded: LoadedConfig; store: TaskStore }> {
  const [{ loadConfig }, { openTaskStore }] = await Promise.all([
    import('../config/load.js'),
    import('../store/openStore.js'),
  ]);
  const loaded = loadConfig(file);
  return { loaded, store: await openTaskStore(loaded, env) };
}

/** The request a waiting or escalated run waits on (the latest one still pending). */
async function waitingOn(store: TaskStore, run: TaskRunV1): Promise<ApprovalRecord | undefined> {
  if (run.status !== 'waiting' && run.status !== 'escalated') return undefined;
  return (await store.listApprovals({ taskId: run.id, status: 'pending' })).at(-1);
}

/** A note for a person whose shell has no `keel` (the printed commands then name the bin). */
const keelNotOnPath =
  '(no `keel` on your PATH runs this bin, so the commands above name it; `pnpm keel:link` in the checkout links `keel`)';

/** Every command path (`audit verify`) that takes `-c CONFIG`. */
function configCommands(program: Command): Set<string> {
  const found = new Set<string>();
  const walk = (command: Command, words: string[]) => {
    for (const sub of command.commands) {
      const path = [...words, sub.name()];
      if (sub.options.some((o) => o.long === '--config')) found.add(path.join(' '));
      walk(sub, path);
    }
  };
  walk(program, []);
  return found;
}

/**
 * The `keel` command line. Returns the exit code; the bin passes it to `process.exit`. Nothing here
 * reads `process` directly, so tests run it in-process with their own streams.
 */
export async function runCli(io: CliIo): Promise<number> {
  let exitCode: number = exitCodes.ok;
  /** The config this command uses, once found: hints printed on an error name it when needed. */
  let configInUse: string | undefined;
  const out = (text: string) => io.stdout.write(`${text}\n`);
  const useConfig = (given: string | undefined) => {
    configInUse = findConfig(io.cwd, given, io.env);
    return configInUse;
  };
  let invocation: Invocation | undefined;
  const program = new Command('keel');
  const getInvocation = () => {
    if (invocation === undefined) {
      const withConfig = configCommands(program);
      invocation = createInvocation({
        bin: io.bin,
        env: io.env,
        cwd: io.cwd,
        subcommands: program.commands.map((c) => c.name()),
        takesConfig: (words) => withConfig.has(words.slice(0, 2).join(' ')) || withConfig.has(words[0] ?? ''),
      });
    }
    return invocation;
  };
  const withStore = async <T>(
    configFile: string | undefined,
    fn: (loaded: LoadedConfig, store: TaskStore) => Promise<T>,
  ) => {
    const { loaded, store } = await openStoreOf(useConfig(configFile), io.env);
    try {
      return await fn(loaded, store);
    } finally {
      await store.close();
    }
  };
  const configOption = () =>
    new Option(
      '-c, --config <file>',
      'keel.config.yaml to use (env KEEL_CONFIG; default: ./keel.config.yaml)',
    );
  const finishRun = async (run: TaskRunV1, json: boolean, config: string, store: TaskStore) => {
    const { formatRunSummary } = await import('./format.js');
    out(json ? JSON.stringify(run, null, 2) : formatRunSummary(run, await waitingOn(store, run)));
    if (run.status === 'waiting' || run.status === 'escalated') {
      if (!json) out(`\n${howToAnswer(run, getInvocation(), config)}`);
      exitCode = exitCodes.waiting;
    } else if (run.status !== 'succeeded') exitCode = exitCodes.taskNotSucceeded;
  };
  const ctx: CliContext = {
    io,
    out,
    withStore,
    configOption,
    finishRun,
    setExitCode: (code) => {
      exitCode = code;
    },
    runOptions: (quiet) => ({
      env: io.env,
      kill: io.kill,
      tracer: io.tracer,
      clock: io.clock,
      ...(io.killSignals === undefined ? {} : { killSignals: io.killSignals }),
      ...(quiet ? {} : { progress: streamProgress(io.stderr) }),
    }),
    approver: (given) => given ?? io.env['KEEL_APPROVER'] ?? io.env['USER'] ?? userInfo().username,
    findConfig: useConfig,
    invocation: getInvocation,
  };

  program
    .description(
      'Keel supervisor: specialist agents routed to MCP servers under hard limits, with durable records.',
    )
    .version(io.version, '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    })
    .exitOverride()
    .addHelpText(
      'after',
      '\nStart with `keel demo`; `keel init` writes a config for your own project. Docs: apps/supervisor/README.md.\n',
    );

  program
    .command('run')
    .description('run a task file end to end; progress goes to stderr, the run record to stdout')
    .argument(
      '<taskfile>',
      'the task (YAML or JSON): type, title, description, mode, limits, tests, deploy, playbook',
    )
    .addOption(configOption())
    .option('--json', 'print the taskRun.v1 record as JSON', false)
    .option('-q, --quiet', 'no progress lines', false)
    .addHelpText(
      'after',
      '\nExit code: 0 when the task succeeded, 1 when it ended otherwise (failed, limit, escalated, killed, error), 2 on bad usage.\n\nExample:\n  keel run fix-login.task.yaml --config keel.config.yaml\n',
    )
    .action(async (taskfile: string, opts: { config?: string; json: boolean; quiet: boolean }) => {
      const { loadTaskFile } = await import('../task/taskFile.js');
      const taskFile = path.resolve(io.cwd, taskfile);
      const task = loadTaskFile(taskFile);
      await withStore(opts.config, async (loaded, store) => {
        const now = io.clock.now();
        const purged = await store.purge(
          new Date(now - loaded.config.retentionDays * 86_400_000),
          new Date(now),
        );
        if (!opts.quiet && purged.modelCalls + purged.toolCalls > 0)
          io.stderr.write(
            `purged ${purged.modelCalls} model-call and ${purged.toolCalls} tool-call bodies past ${loaded.config.retentionDays} days\n`,
          );
        const { runTask } = await import('../engine/runTask.js');
        const { run } = await runTask({ loaded, task, taskFile, store, ...ctx.runOptions(opts.quiet) });
        await finishRun(run, opts.json, loaded.file, store);
      });
    });

  program
    .command('runs')
    .description('list tasks, newest first')
    .addOption(configOption())
    .option('-n, --limit <n>', 'how many', positiveInt('--limit'), 20)
    .option(
      '--status <status>',
      'only tasks in this status (queued, running, waiting, escalated, succeeded, …)',
    )
    .option('--type <type>', 'only tasks of this type')
    .option('--json', 'JSON', false)
    .action(
      async (opts: { config?: string; limit: number; status?: string; type?: string; json: boolean }) => {
        const [{ taskStatuses }, { formatRuns }] = await Promise.all([
          import('@keel/contracts'),
          import('./format.js'),
        ]);
        const status = opts.status;
        if (status !== undefined && !taskStatuses.includes(status as TaskStatus))
          throw new KeelError('INVALID_ARGUMENT', `--status '${status}' is no task status`, {
            hint: `a task is one of: ${taskStatuses.join(', ')}`,
          });
        await withStore(opts.config, async (loaded, store) => {
          const tasks = await store.listTasks({
            limit: opts.limit,
            ...(status === undefined ? {} : { status: status as TaskStatus }),
            ...(opts.type === undefined ? {} : { type: opts.type }),
          });
          out(
            opts.json
              ? JSON.stringify(
                  tasks.map((t) => t.run ?? { id: t.id, status: t.status }),
                  null,
                  2,
                )
              : getInvocation().rewrite(formatRuns(tasks), { config: loaded.file }),
          );
        });
      },
    );

  program
    .command('show')
    .description('one task: its run record, every step with its model call and tool calls, limits used')
    .argument('<task>', 'task id (from keel runs)')
    .addOption(configOption())
    .option('--json', 'the task, its model calls, tool calls and events as JSON', false)
    .action(async (id: string, opts: { config?: string; json: boolean }) => {
      const { formatShow } = await import('./format.js');
      await withStore(opts.config, async (_loaded, store) => {
        const task = await requireTask(store, id);
        const [models, tools, events, asked] = await Promise.all([
          store.listModelCalls(id),
          store.listToolCalls(id),
          store.listEvents(id),
          task.run === null ? undefined : waitingOn(store, task.run),
        ]);
        out(
          opts.json
            ? JSON.stringify({ task, modelCalls: models, toolCalls: tools, events }, null, 2)
            : formatShow(task, models, tools, events, io.clock.now(), asked),
        );
      });
    });

  program
    .command('init')
    .description('write a commented starter keel.config.yaml (and an example task) that runs as it is')
    .argument('[dir]', 'where to write them', '.')
    .option('--workspace <dir>', 'the project the servers are rooted at, relative to the config', '.')
    .addOption(
      new Option('--model <name>', 'the model every agent uses; edit keel.config.yaml for another')
        .choices(Object.keys(modelPresets))
        .default('playbook'),
    )
    .option('--force', 'overwrite existing files', false)
    .action(async (dir: string, opts: { workspace: string; model: ModelPresetName; force: boolean }) => {
      const target = path.resolve(io.cwd, dir);
      const files = {
        'keel.config.yaml': starterConfig({ workspace: opts.workspace, model: opts.model }),
        'task.example.yaml': exampleTask,
      };
      // Both checked before either is written: a refusal leaves nothing half-written.
      const existing = Object.keys(files)
        .map((name) => path.join(target, name))
        .filter((file) => existsSync(file));
      if (existing.length > 0 && !opts.force)
        throw new KeelError(
          'ALREADY_EXISTS',
          existing.length === 1 ? `${existing[0]} already exists` : `${existing.join(' and ')} already exist`,
          {
            hint: 'pass --force to overwrite, or name another directory: `keel init DIR`',
          },
        );
      mkdirSync(target, { recursive: true });
      const keel = getInvocation();
      for (const [name, text] of Object.entries(files)) {
        const file = path.join(target, name);
        writeFileSync(file, text);
        out(`wrote ${keel.pathFrom(file)}`);
      }
      const [{ workspaceProblems }, { loadConfig }] = await Promise.all([
        import('../config/workspace.js'),
        import('../config/load.js'),
      ]);
      if (ignoreKeelFiles(target))
        out(`wrote ${keel.pathFrom(path.join(target, '.gitignore'))} (${keelIgnored})`);
      out(
        `state: ${keel.pathFrom(loadConfig(path.join(target, 'keel.config.yaml')).stateDir)} (outside the project)`,
      );
      for (const problem of workspaceProblems(path.resolve(target, opts.workspace)))
        io.stderr.write(`warning: ${problem}\n`);
      const next = keel.command('run task.example.yaml', { cwd: target });
      out(
        target === path.resolve(keel.shellCwd) ? `next: ${next}` : `next:\n  ${keel.cd(target)}\n  ${next}`,
      );
    });

  program
    .command('purge')
    .description('delete model-call bodies and tool payloads older than the retention (the event log stays)')
    .addOption(configOption())
    .option('--older-than-days <n>', 'override retentionDays', positiveInt('--older-than-days'))
    .action(async (opts: { config?: string; olderThanDays?: number }) => {
      await withStore(opts.config, async (loaded, store) => {
        const days = opts.olderThanDays ?? loaded.config.retentionDays;
        const now = io.clock.now();
        const result = await store.purge(new Date(now - days * 86_400_000), new Date(now));
        out(
          `purged ${result.modelCalls} model calls and ${result.toolCalls} tool calls older than ${days} days`,
        );
      });
    });

  program
    .command('migrate')
    .description(
      'create or upgrade the PostgreSQL task store (also done on first use; safe to run twice, even at once)',
    )
    .addOption(configOption())
    .action(async (opts: { config?: string }) => {
      const [{ loadConfig }, { storeLocation }] = await Promise.all([
        import('../config/load.js'),
        import('../store/openStore.js'),
      ]);
      const loaded = loadConfig(findConfig(io.cwd, opts.config, io.env));
      const location = storeLocation(loaded, io.env);
      if (location.kind === 'sqlite') {
        out(
          `the task store is SQLite (${location.dir}): it creates its tables when opened; set KEEL_DATABASE_URL or store: for PostgreSQL`,
        );
        return;
      }
      // Loaded here: the engine, the model adapters and the database client are heavy, and most commands need none of them.
      const [{ default: pg }, { migratePostgres }] = await Promise.all([
        import('pg'),
        import('../store/postgresTaskStore.js'),
      ]);
      const pool = new pg.Pool({ connectionString: location.url, max: 1 });
      try {
        const applied = await migratePostgres(pool);
        out(
          applied.length === 0
            ? 'the PostgreSQL task store is up to date'
            : `applied migration(s) ${applied.join(', ')}`,
        );
      } finally {
        await pool.end();
      }
    });

  const audit = program
    .command('audit')
    .description("the task store's hash-chained event log: keel audit verify")
    .addOption(configOption())
    .allowExcessArguments()
    .action((opts: { config?: string }, command: Command) => {
      const given = command.args[0];
      if (opts.config !== undefined) useConfig(opts.config);
      throw new KeelError(
        'INVALID_ARGUMENT',
        given === undefined ? 'audit needs a subcommand' : `audit has no subcommand '${given}'`,
        { hint: "`keel audit verify` checks the event log's hash chain" },
      );
    });
  audit
    .command('verify')
    .description("check the event log's hash chain; exit 1 names the first altered event")
    .addOption(configOption())
    // `keel audit -c X verify` and `keel audit verify -c X` alike: the -c may land on either command.
    .action(async (_opts: { config?: string }, command: Command) => {
      const opts = command.optsWithGlobals<{ config?: string }>();
      await withStore(opts.config, async (_loaded, store) => {
        const result = await store.verifyEvents();
        if (result.ok) out(`ok: ${result.events} events, chain intact`);
        else {
          out(
            `BROKEN at event ${result.firstBad!.seq}: ${result.firstBad!.reason} (${result.events} events read)`,
          );
          exitCode = exitCodes.taskNotSucceeded;
        }
      });
    });

  program
    .command('demo')
    .description(
      'create a sample project (an app with two bugs and a failing test, staging and production deploy targets) and run a task on it with the playbook model: plan, code, review, tests, staging deploy — then it stops at the production approval',
    )
    .option('--dir <dir>', 'where to create it (default: a new temporary directory)')
    .option('-q, --quiet', 'no progress lines', false)
    .action(async (opts: { dir?: string; quiet: boolean }) => {
      const dir =
        opts.dir === undefined
          ? mkdtempSync(path.join(os.tmpdir(), 'keel-demo-'))
          : path.resolve(io.cwd, opts.dir);
      if (opts.dir !== undefined && existsSync(path.join(dir, 'keel.config.yaml')))
        throw new KeelError('ALREADY_EXISTS', `${dir} already holds a demo`, {
          hint: 'pick another --dir, or delete it',
        });
      mkdirSync(dir, { recursive: true });
      const [{ createDemoProject }, { runTask }, { loadTaskFile }, { formatRunSummary }] = await Promise.all([
        import('./demoProject.js'),
        import('../engine/runTask.js'),
        import('../task/taskFile.js'),
        import('./format.js'),
      ]);
      const demo = createDemoProject(dir);
      out(`demo project: ${demo.project}\nconfig:       ${demo.config}\ntask:         ${demo.task}\n`);
      const { loaded, store } = await openStoreOf(demo.config, io.env);
      try {
        const { run } = await runTask({
          loaded,
          task: loadTaskFile(demo.task),
          taskFile: demo.task,
          store,
          env: io.env,
          kill: io.kill,
          tracer: io.tracer,
          ...(opts.quiet ? {} : { progress: streamProgress(io.stderr) }),
        });
        out(`\n${formatRunSummary(run, await waitingOn(store, run))}\n`);
        // Every line below runs as printed, once the shell is in the demo's directory.
        const keel = getInvocation();
        const block = (rows: Array<[string, string]>) =>
          formatCommands(rows, path.resolve(keel.shellCwd) === dir ? undefined : keel.cd(dir));
        const k = (args: string) => keel.command(args, { config: demo.config, cwd: dir });
        const approval = /(ap-[0-9a-f]{10})/.exec(run.outcome.message)?.[1];
        if (run.status === 'waiting' && approval !== undefined)
          out(
            [
              'The task waits for a human: production requires an approval, and the deploy server accepts',
              'only a token the supervisor signs after a person approves (the model never sees it).',
              block([
                [k('approvals'), 'what waits, and why'],
                [
                  k(`approve ${approval} --as NAME`),
                  'approve: the task resumes, deploys to production, finishes',
                ],
                [k(`deny ${approval} --reason TEXT`), 'or refuse: the task ends with the reason'],
              ]),
              '',
            ].join('\n'),
          );
        out(
          [
            'where to look next:',
            block([
              [k(`show ${run.id}`), 'every step, model call and tool call'],
              [k('runs'), 'all tasks in this store'],
              [k(`trace ${run.id}`), 'the span tree: agents, model calls, tool calls'],
              [k('audit verify'), 'the hash-chained event log'],
              [k(`replay ${run.id}`), 'the task again from its records, no model called: identical'],
              ['git -C project log --oneline', 'the commits the coding agent made'],
              ['ls -l deploys/*', 'the releases, and current -> the live one'],
            ]),
            ...(keel.onPath ? [] : ['', keelNotOnPath]),
          ].join('\n'),
        );
        // Stopping at the production approval is the demo working as meant.
        if (run.status !== 'succeeded' && run.status !== 'waiting') exitCode = exitCodes.taskNotSucceeded;
      } finally {
        await store.close();
      }
    });

  registerControlCommands(program, ctx);
  registerWorkerCommands(program, ctx);
  registerConsoleCommand(program, ctx);
  for (const register of observabilityCommands) register(program, ctx);

  try {
    await program.parseAsync([...io.argv]);
  } catch (error) {
    if (
      error !== null &&
      typeof error === 'object' &&
      'exitCode' in error &&
      'code' in error &&
      String((error as { code: unknown }).code).startsWith('commander.')
    ) {
      const code = (error as { exitCode: number }).exitCode;
      return code === 0 ? exitCodes.ok : exitCodes.usage;
    }
    if (error instanceof KeelError) {
      // Commands named in the message run as printed: the keel on PATH or this bin, and the config used.
      const say = (text: string) =>
        getInvocation().rewrite(text, configInUse === undefined ? {} : { config: configInUse });
      io.stderr.write(`keel: ${say(error.message)}\n${error.hint ? `hint: ${say(error.hint)}\n` : ''}`);
      return exitCodes.usage;
    }
    io.stderr.write(`keel: ${(error as Error).stack ?? String(error)}\n`);
    return exitCodes.taskNotSucceeded;
  }
  return exitCode;
}
