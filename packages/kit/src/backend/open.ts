import { KeelError } from '../errors.js';
import { openStateDir, type StateDir } from '../stateDir.js';
import { isPostgresUrl, type StoreBackend } from './backend.js';
import { sqliteBackend } from './sqliteBackend.js';

/**
 * The backend a server's flags name: PostgreSQL for a `postgres://` URL (loaded only then), else
 * SQLite in the state directory (`state`, already opened, or `stateDir`). With SQLite the returned
 * backend owns a directory it opened itself; a given `state` stays the caller's to close.
 */
export async function openStoreBackend(
  where: { store: string | undefined } & ({ state: StateDir } | { stateDir: string }),
): Promise<StoreBackend> {
  const { store } = where;
  if (store !== undefined && store !== '') {
    if (!isPostgresUrl(store))
      throw new KeelError(
        'INVALID_ARGUMENT',
        `--store must be a postgres:// URL, not '${store.split(':')[0]}:…'`,
        {
          hint: 'Pass postgres://USER:PASSWORD@HOST:PORT/DATABASE, or leave --store out to keep SQLite in --state-dir.',
        },
      );
    const { openPostgresBackend } = await import('../postgres/backend.js');
    return openPostgresBackend(store);
  }
  if ('state' in where) {
    const backend = sqliteBackend(where.state);
    // The caller closes the state dir it opened.
    return { ...backend, close: async () => undefined };
  }
  return sqliteBackend(openStateDir(where.stateDir));
}
