import type { Command, Option } from 'commander';
import { KeelError } from '@keel/kit/core';
import type { LoadedConfig } from '../../config/load.js';
import type { TaskRecord, TaskStore } from '../../store/taskStore.js';
import type { CliIo } from '../cliContext.js';

/** What `runCli` lends the commands that live in their own files. */
export interface CommandContext {
  io: CliIo;
  out(text: string): void;
  withStore<T>(
    configFile: string | undefined,
    fn: (loaded: LoadedConfig, store: TaskStore) => Promise<T>,
  ): Promise<T>;
  configOption(): Option;
  /** The config file a command uses: --config, KEEL_CONFIG, or ./keel.config.yaml (NOT_FOUND if none). */
  findConfig(given: string | undefined): string;
  /** Sets the process's exit code (the command still returns normally). */
  setExitCode(code: number): void;
}

export type RegisterCommand = (program: Command, ctx: CommandContext) => void;

/** The task, or a NOT_FOUND error that names recent tasks. */
export async function requireTask(store: TaskStore, id: string): Promise<TaskRecord> {
  const task = await store.getTask(id);
  if (task !== undefined) return task;
  const recent = (await store.listTasks({ limit: 5 })).map((t) => t.id);
  throw new KeelError('NOT_FOUND', `no task '${id}'`, {
    hint: recent.length === 0 ? 'no tasks yet: `keel demo` runs one' : `recent tasks: ${recent.join(', ')}`,
  });
}
