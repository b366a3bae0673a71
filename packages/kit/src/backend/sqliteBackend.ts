import { createAuditLog, type SqliteAuditLog } from '../audit/auditLog.js';
import { createSqliteIdempotencyStore } from '../idempotency/sqliteStore.js';
import { lazy } from '../lazy.js';
import { createSqliteStateStore, type StateStore } from '../state/stateStore.js';
import type { StateDir } from '../stateDir.js';
import type { StoreBackend } from './backend.js';

/**
 * The embedded backend: everything in the state directory's `keel.db`, opened on first use (a
 * read-only session never loads SQLite). The idempotency store and the audit log share the database,
 * so a run's result and its audit row commit in one transaction.
 */
export function sqliteBackend(state: StateDir): StoreBackend {
  let audit: SqliteAuditLog | undefined;
  const auditLog = () => (audit ??= createAuditLog(state.database()));
  const states = new Map<string, StateStore>();
  return {
    kind: 'sqlite',
    location: state.dir,
    secret: state.cursorSecret,
    idempotency: lazy(() => createSqliteIdempotencyStore(state.database(), { audit: auditLog() })),
    audit: lazy(auditLog),
    state(namespace) {
      let store = states.get(namespace);
      if (store === undefined) {
        const opened = lazy(() => createSqliteStateStore(state.database(), namespace));
        states.set(namespace, (store = opened));
      }
      return store;
    },
    async close() {
      state.close();
    },
  };
}
