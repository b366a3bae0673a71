import path from 'node:path';
import { Command, Option } from 'commander';
import type { StoreBackend } from '../backend/backend.js';
import { openStoreBackend } from '../backend/open.js';
import type { AnyTool } from '../defineTool.js';
import type { PrepareStep } from '../options.js';
import { KeelError } from '../errors.js';
import { createPathJail, type PathJail } from '../jail.js';
import { createLogger, logLevels, type Logger, type LogLevel } from '../logger.js';
import { startTelemetry } from '../otel.js';
import { kitDefaults } from '../defaults.js';
import { createProcessGroups } from '../processGroups.js';
import { kitCrashPointFrom, type KitCrashPoint } from '../crashPoint.js';
import { createServer } from '../server.js';
import { collect, nonNegativeInt } from './flags.js';
import type { StateStore } from '../state/stateStore.js';
import { defaultStateDir, openStateDir, type StateDir } from '../stateDir.js';
import { serveStdio } from '../transports/stdio.js';

/** The flags every Keel server bin shares. */
export interface CommonOptions {
  root: string[];
  stateDir: string;
  /** Extra paths no tool may reach, though inside a root (Keel's config, keys, task files). */
  denyPath: string[];
  /** A PostgreSQL URL for a store shared by replicas; without it, SQLite in the state dir. */
  store: string | undefined;
  http: boolean;
  port: number;
  host: string;
  allowedHost: string[];
  allowedOrigin: string[];
  logLevel: LogLevel;
  timeoutMs: number;
  leaseMs: number;
  idempotencyTtlHours: number;
}

export interface BuildContext<TExtra> {
  options: CommonOptions & TExtra;
  jail: PathJail;
  logger: Logger;
  env: NodeJS.ProcessEnv;
  /** The state directory the kit opened, for local files only (logs, caches); durable state goes through `stateStore`. */
  state: StateDir;
  /**
   * The server's own durable state under `namespace`, on the store the kit opened (SQLite in the
   * state directory, or the shared database): what replicas of the server must agree on.
   */
  stateStore: (namespace: string) => StateStore;
}

/** What a server's own subcommands get: the environment, and the way to set the exit code. */
export interface SubcommandContext {
  env: NodeJS.ProcessEnv;
  setExitCode(code: number): void;
}

export interface ServerCliOptions<TExtra> {
  /** The server name (also the idempotency scope and audit `server` column). */
  name: string;
  bin: string;
  version: string;
  description: string;
  argv: readonly string[];
  env: NodeJS.ProcessEnv;
  /** Server-specific flags; their parsed values arrive in `build` next to the common ones. */
  configure?: (serve: Command) => void;
  /**
   * Files of the server's own, beyond its state directory, that no tool may reach (a configuration
   * file it reads, its keys), from its parsed flags: the jail denies them with the state directory.
   */
  ownFiles?: (options: CommonOptions & TExtra) => readonly string[];
  /** Server-specific subcommands (beside `audit`), added to the root command. */
  commands?: (program: Command, context: SubcommandContext) => void;
  /** Extra help text: examples, the client config snippet. */
  helpText?: string;
  build(context: BuildContext<TExtra>): Promise<BuiltServer> | BuiltServer;
}

/** What a bin's `build` returns: its tools, and optionally instructions and the server's `prepare` step. */
export interface BuiltServer {
  tools: readonly AnyTool[];
  instructions?: string;
  prepare?: PrepareStep;
}

/**
 * The whole life of a server bin: parse flags, open state, serve stdio or HTTP, shut down cleanly on
 * SIGINT/SIGTERM or when the client closes stdin. Also the `audit verify` subcommand. Returns the
 * exit code; the bin passes it to `process.exit`.
 */
export async function runServerCli<TExtra = Record<string, never>>(
  cli: ServerCliOptions<TExtra>,
): Promise<number> {
  const stderr = process.stderr;
  let exitCode = 0;
  const program = new Command(cli.bin)
    .description(cli.description)
    .version(cli.version, '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    // Root options belong to serving; `audit verify --state-dir` must reach the subcommand.
    .enablePositionalOptions()
    // Help and version go to stdout like any CLI's (no protocol runs then); errors to stderr.
    .configureOutput({
      writeOut: (text) => process.stdout.write(text),
      writeErr: (text) => stderr.write(text),
    })
    .exitOverride();

  // The root command serves; `audit` is the one subcommand. Options live on the root so `--help` shows them.
  const serve = program
    .option(
      '-r, --root <dir>',
      'a directory the tools may touch (repeatable, required); nothing outside the roots is reachable',
      collect,
    )
    .option(
      '--state-dir <dir>',
      'where the idempotency store and audit log live (env KEEL_STATE_DIR)',
      defaultStateDir(cli.env),
    )
    .option(
      '--deny-path <path>',
      "a file or directory no tool may read, write or list, though inside a root: Keel's own config, keys, prompts, task files (repeatable; the state dir is always denied)",
      collect,
    )
    .option(
      '--store <url>',
      'a postgres:// URL: keep the idempotency store, audit log and state there, shared by every replica (env KEEL_DATABASE_URL; default: SQLite in --state-dir)',
      cli.env['KEEL_DATABASE_URL'],
    )
    .option('--http', 'serve Streamable HTTP instead of stdio', false)
    .option('--port <port>', 'HTTP port (0 picks a free one)', nonNegativeInt('--port'), kitDefaults.port)
    .option('--host <host>', 'HTTP interface; beyond loopback requires KEEL_HTTP_TOKEN', kitDefaults.host)
    .option('--allowed-host <name>', 'an extra Host header name to accept over HTTP (repeatable)', collect)
    .option('--allowed-origin <name>', 'an extra Origin hostname to accept over HTTP (repeatable)', collect)
    .addOption(new Option('--log-level <level>', 'stderr log level').choices(logLevels).default('info'))
    .option(
      '--timeout-ms <ms>',
      'per-call time limit unless a tool sets its own',
      nonNegativeInt('--timeout-ms'),
      kitDefaults.timeoutMs,
    )
    .option(
      '--lease-ms <ms>',
      'idempotency lease: after this long without a heartbeat a claim counts as crashed',
      nonNegativeInt('--lease-ms'),
      kitDefaults.leaseMs,
    )
    .option(
      '--idempotency-ttl-hours <hours>',
      'how long a completed result is kept for retries',
      nonNegativeInt('--idempotency-ttl-hours'),
      kitDefaults.idempotencyTtlHours,
    );
  cli.configure?.(serve);
  if (cli.helpText !== undefined) serve.addHelpText('after', cli.helpText);

  serve.action(async () => {
    const raw = program.opts<CommonOptions & TExtra>();
    // Repeatable flags have no commander default (it would print as `(default: [])` in --help).
    exitCode = await serveCommand(cli, {
      ...raw,
      root: raw.root ?? [],
      denyPath: raw.denyPath ?? [],
      allowedHost: raw.allowedHost ?? [],
      allowedOrigin: raw.allowedOrigin ?? [],
    });
  });

  const audit = program.command('audit').description('inspect the hash-chained audit log');
  audit
    .command('verify')
    .description('check every row of the audit log against the hash chain; exit 1 if any row was altered')
    .option(
      '--state-dir <dir>',
      'the state directory to verify (env KEEL_STATE_DIR)',
      defaultStateDir(cli.env),
    )
    .option(
      '--store <url>',
      'the PostgreSQL store to verify instead (env KEEL_DATABASE_URL)',
      cli.env['KEEL_DATABASE_URL'],
    )
    .action(async (raw: { stateDir: string; store: string | undefined }) => {
      let backend: StoreBackend;
      try {
        backend = await openStoreBackend({ store: raw.store, stateDir: path.resolve(raw.stateDir) });
      } catch (error) {
        if (!(error instanceof KeelError)) throw error;
        stderr.write(`${error.message}\n${error.hint ?? ''}\n`);
        exitCode = 2;
        return;
      }
      try {
        const result = await backend.audit.verify();
        process.stdout.write(`${JSON.stringify(result)}\n`);
        exitCode = result.ok ? 0 : 1;
      } finally {
        await backend.close();
      }
    });

  cli.commands?.(program, { env: cli.env, setExitCode: (code) => (exitCode = code) });

  try {
    await program.parseAsync([...cli.argv], { from: 'node' });
  } catch (error) {
    const code = (error as { code?: string; exitCode?: number }).code;
    if (code === 'commander.helpDisplayed' || code === 'commander.version' || code === 'commander.help')
      return 0;
    // A usage error (unknown flag, bad value, missing argument) exits 2, as shells expect.
    if (typeof code === 'string' && code.startsWith('commander.')) return 2;
    throw error;
  }
  return exitCode;
}

/** What a person who started a server without `--root` reads: how to start it. */
function rootUsage(bin: string): string {
  return [
    `${bin}: --root DIR is required: the directory the tools may touch (repeatable); nothing outside it is reachable`,
    '',
    'Usage:',
    `  ${bin} --root DIR                    serve MCP over stdio (an MCP client starts it)`,
    `  ${bin} --root DIR --http [--port N]  serve Streamable HTTP at http://${kitDefaults.host}:${kitDefaults.port}/mcp`,
    `  ${bin} audit verify                  check the audit log's hash chain`,
    '',
    `Run ${bin} --help for every flag.`,
    '',
  ].join('\n');
}

async function serveCommand<TExtra>(
  cli: ServerCliOptions<TExtra>,
  options: CommonOptions & TExtra,
): Promise<number> {
  const logger = createLogger({
    level: options.logLevel,
    stream: process.stderr,
    fields: { server: cli.name },
  });
  if (options.root.length === 0) {
    logger.error('no root given', {
      hint: `Pass --root DIR (repeatable), e.g. ${cli.bin} --root . — the tools reach nothing outside the roots.`,
    });
    // The log line is for a supervisor's log; a person at a terminal gets the usage.
    process.stderr.write(rootUsage(cli.bin));
    return 2;
  }
  let crashPoint: KitCrashPoint;
  try {
    // Chaos runs only: unset (or another component's name), a no-op.
    crashPoint = kitCrashPointFrom(cli.env['KEEL_CRASH_AT'], logger);
  } catch (error) {
    if (!(error instanceof KeelError)) throw error;
    logger.error(error.message, { code: error.code, hint: error.hint });
    return 2;
  }
  let state: StateDir;
  try {
    state = openStateDir(path.resolve(options.stateDir));
  } catch (error) {
    logger.error(`state directory '${options.stateDir}' cannot be used: ${(error as Error).message}`, {
      hint: 'Pass a writable --state-dir (or set KEEL_STATE_DIR).',
    });
    return 2;
  }
  let jail: PathJail;
  try {
    // Keel's own files are out of every tool's reach even when a root holds them.
    jail = await createPathJail(options.root, {
      deny: [state.dir, ...options.denyPath, ...(cli.ownFiles?.(options) ?? [])],
    });
  } catch (error) {
    state.close();
    if (error instanceof KeelError) {
      logger.error(error.message, { code: error.code, hint: error.hint });
      return 2;
    }
    throw error;
  }
  logger.info("Keel's own files, denied to every tool", { paths: jail.denied });
  let backend: StoreBackend;
  try {
    backend = await openStoreBackend({ store: options.store, state });
  } catch (error) {
    if (!(error instanceof KeelError)) throw error;
    logger.error(error.message, { code: error.code, hint: error.hint });
    state.close();
    return 2;
  }
  const telemetry = await startTelemetry({
    serviceName: cli.name,
    serviceVersion: cli.version,
    env: cli.env,
    logger,
  });
  let built: Awaited<ReturnType<ServerCliOptions<TExtra>['build']>>;
  try {
    built = await cli.build({
      options,
      jail,
      logger,
      env: cli.env,
      state,
      stateStore: (namespace) => backend.state(namespace),
    });
  } catch (error) {
    // A server refusing its own configuration (a bad config file, conflicting flags) is a usage error.
    if (!(error instanceof KeelError)) throw error;
    logger.error(error.message, { code: error.code, hint: error.hint });
    await telemetry.shutdown();
    await backend.close();
    state.close();
    return 2;
  }
  // Every child process group the calls start, so none outlives this process however it ends.
  const processes = createProcessGroups();
  const killChildren = () => processes.killAll('SIGKILL');
  process.once('exit', killChildren);
  const server = createServer({
    processes,
    name: cli.name,
    version: cli.version,
    tools: built.tools,
    ...(built.instructions === undefined ? {} : { instructions: built.instructions }),
    ...(built.prepare === undefined ? {} : { prepare: built.prepare }),
    jail,
    store: backend.idempotency,
    audit: backend.audit,
    cursorSecret: backend.secret,
    logger,
    ...(telemetry.tracer === undefined ? {} : { tracer: telemetry.tracer }),
    limits: { defaultTimeoutMs: options.timeoutMs },
    idempotency: { leaseMs: options.leaseMs, ttlMs: options.idempotencyTtlHours * 3600_000 },
    crashPoint,
  });

  // Listen for the end before announcing the start: a supervisor may signal the moment it reads 'listening'.
  const stopRequested = new Promise<string>((resolve) => {
    // `on`, not `once`: a second signal during shutdown must not kill the process before its children.
    process.on('SIGINT', () => resolve('SIGINT'));
    process.on('SIGTERM', () => resolve('SIGTERM'));
    if (!options.http) process.stdin.once('end', () => resolve('stdin closed'));
  });
  let stop: () => Promise<void>;
  if (options.http) {
    let http;
    try {
      // Loaded only when asked for: stdio servers do not pay for the HTTP stack at start-up.
      const { serveHttp } = await import('../transports/http.js');
      http = await serveHttp(server, {
        host: options.host,
        port: options.port,
        token: cli.env['KEEL_HTTP_TOKEN'],
        allowedHosts: options.allowedHost,
        allowedOrigins: options.allowedOrigin,
        logger,
      });
    } catch (error) {
      const hint =
        error instanceof KeelError
          ? error.hint
          : (error as NodeJS.ErrnoException).code === 'EADDRINUSE'
            ? 'Pick another --port, or --port 0 for a free one.'
            : undefined;
      logger.error(`cannot serve HTTP: ${(error as Error).message}`, { hint });
      await server.close({ graceMs: 0 });
      await backend.close();
      state.close();
      return 2;
    }
    logger.info('listening', { url: http.url, roots: jail.roots, store: backend.location });
    stop = () => http.close();
  } else {
    const stdio = serveStdio(server, {
      onerror: (error) => logger.error('stdio transport error', { error }),
    });
    logger.info('serving on stdio', { roots: jail.roots, store: backend.location });
    stop = async () => {
      await server.close();
      await stdio.close();
    };
  }

  const reason = await stopRequested;
  logger.info('shutting down', { reason });
  // Cancels the calls in flight and kills their process groups before anything else closes.
  await stop();
  killChildren();
  await telemetry.shutdown();
  await backend.close();
  state.close();
  return 0;
}
