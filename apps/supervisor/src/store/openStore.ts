import { KeelError } from '@keel/kit/core';
import type { LoadedConfig } from '../config/load.js';
import { createSqliteTaskStore } from './sqliteTaskStore.js';
import type { TaskStore } from './taskStore.js';

/** Where the task store lives: `KEEL_DATABASE_URL`, else the config's `store`, else SQLite in the state dir. */
export function storeLocation(
  loaded: LoadedConfig,
  env: NodeJS.ProcessEnv,
): { kind: 'postgres'; url: string } | { kind: 'sqlite'; dir: string } {
  const url = env['KEEL_DATABASE_URL'] || loaded.config.store;
  if (url === undefined) return { kind: 'sqlite', dir: loaded.stateDir };
  if (!/^postgres(ql)?:\/\//.test(url))
    throw new KeelError(
      'INVALID_ARGUMENT',
      `store: '${url.replace(/\/\/[^@]*@/, '//…@')}' is not a postgres:// URL`,
      {
        hint: 'leave store unset for the embedded SQLite store, or give postgres://user@host:port/db',
      },
    );
  return { kind: 'postgres', url };
}

/** Opens the task store a config names. A PostgreSQL store is migrated on first use. */
export async function openTaskStore(loaded: LoadedConfig, env: NodeJS.ProcessEnv): Promise<TaskStore> {
  const location = storeLocation(loaded, env);
  if (location.kind === 'sqlite') return createSqliteTaskStore(location.dir);
  try {
    const { createPostgresTaskStore } = await import('./postgresTaskStore.js');
    return await createPostgresTaskStore(location.url);
  } catch (cause) {
    // A schema newer than this keel is no connection problem: its own message and hint stand.
    if (cause instanceof KeelError && cause.code === 'PRECONDITION_FAILED') throw cause;
    throw new KeelError('UNAVAILABLE', `cannot open the PostgreSQL task store: ${(cause as Error).message}`, {
      cause,
      hint: 'check KEEL_DATABASE_URL (or store in keel.config.yaml) and that the server accepts connections',
    });
  }
}
