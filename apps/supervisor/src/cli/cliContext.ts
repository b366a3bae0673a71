import type { Option } from 'commander';
import type { TaskRunV1 } from '@keel/contracts';
import type { Tracer } from '@opentelemetry/api';
import type { Clock } from '../clock.js';
import type { LoadedConfig } from '../config/load.js';
import type { KillSignals, RunTaskOptions } from '../engine/runTask.js';
import type { TaskStore } from '../store/taskStore.js';
import type { Invocation } from './invocation.js';

export interface CliIo {
  argv: readonly string[];
  env: NodeJS.ProcessEnv;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  cwd: string;
  version: string;
  /** Aborted on SIGINT/SIGTERM: the running task ends `killed`. */
  kill: AbortSignal;
  /** Rung on SIGUSR2 by `keel kill` in another terminal: running tasks check the store for a kill. */
  killSignals?: KillSignals;
  tracer: Tracer | undefined;
  /** Where every command reads the time (the bin passes the system clock; tests may fix it). */
  clock: Clock;
  /**
   * The running bin file. Printed commands name it (`node BIN …`) unless the `keel` on PATH is this
   * same bin; without it (in-process tests) they say `keel`.
   */
  bin?: string;
}

/** What the command modules share: output, the store opened from the config, run options. */
export interface CliContext {
  io: CliIo;
  out(text: string): void;
  withStore<T>(
    configFile: string | undefined,
    fn: (loaded: LoadedConfig, store: TaskStore) => Promise<T>,
  ): Promise<T>;
  configOption(): Option;
  /**
   * Prints a run record (and, when it waits, since when and what to type next) and sets the exit
   * code from its status.
   */
  finishRun(run: TaskRunV1, json: boolean, config: string, store: TaskStore): Promise<void>;
  setExitCode(code: number): void;
  /** The options every task run gets from the command line: kill wiring, tracing, progress. */
  runOptions(
    quiet: boolean,
  ): Pick<RunTaskOptions, 'env' | 'kill' | 'tracer' | 'progress' | 'killSignals' | 'clock'>;
  /** The person deciding: --as, else the login name. */
  approver(given: string | undefined): string;
  /** The config file a command uses: --config, KEEL_CONFIG, or ./keel.config.yaml. */
  findConfig(given: string | undefined): string;
  /** How a printed command is written so that it runs where it is printed (one place decides). */
  invocation(): Invocation;
}

/**
 * Exit codes: 0 the task succeeded (or the command worked), 1 the task did not, 2 bad usage or
 * config, 3 the task waits for a human (an approval or an escalation).
 */
export const exitCodes = { ok: 0, taskNotSucceeded: 1, usage: 2, waiting: 3 } as const;
