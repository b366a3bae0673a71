import { randomBytes } from 'node:crypto';
import { redactUrl, type StoreBackend } from '../backend/backend.js';
import type { StateStore } from '../state/stateStore.js';
import { createPostgresAuditLog } from './auditLog.js';
import { againWhenLost, openPostgres } from './database.js';
import { createPostgresIdempotencyStore } from './idempotencyStore.js';
import { createPostgresStateStore } from './stateStore.js';

/**
 * Everything a server keeps, on one PostgreSQL database shared by its replicas: the idempotency
 * store, the audit log, its state, and the secret that signs cursors and seals request state (the
 * first replica writes it, every other reads the same one, so a cursor or a sealed question from one
 * replica is good on the next behind a balancer).
 */
export async function openPostgresBackend(url: string): Promise<StoreBackend> {
  // Every statement of the start-up is idempotent (migrations under their lock, the secret written
  // if absent, a reap): a session ended under one (a restart, a failover, an administrator's
  // pg_terminate_backend) is tried again on a fresh connection, not a dead server.
  return againWhenLost(() => openOnce(url));
}

async function openOnce(url: string): Promise<StoreBackend> {
  const pool = await openPostgres(url);
  try {
    await pool.query('INSERT INTO keel_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [
      'cursor',
      randomBytes(32),
    ]);
    const found = await pool.query<{ value: Buffer }>('SELECT value FROM keel_secrets WHERE name = $1', [
      'cursor',
    ]);
    // The idempotency store's name, chosen by the first replica: every replica on this database
    // reports the same one, and a new database is a new store.
    await pool.query('INSERT INTO keel_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [
      'idempotency-store',
      randomBytes(16),
    ]);
    const named = await pool.query<{ value: Buffer }>('SELECT value FROM keel_secrets WHERE name = $1', [
      'idempotency-store',
    ]);
    const idempotency = createPostgresIdempotencyStore(pool, {
      identity: named.rows[0]!.value.toString('hex'),
    });
    // Whatever expired while no replica ran goes now.
    await idempotency.reap();
    const states = new Map<string, StateStore>();
    return {
      kind: 'postgres',
      location: redactUrl(url),
      secret: found.rows[0]!.value,
      idempotency,
      audit: createPostgresAuditLog(pool),
      state(namespace) {
        let store = states.get(namespace);
        if (store === undefined) states.set(namespace, (store = createPostgresStateStore(pool, namespace)));
        return store;
      },
      close: () => pool.end(),
    };
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw error;
  }
}

export { createPostgresAuditLog } from './auditLog.js';
export {
  againWhenLost,
  idleInTransactionMs,
  isConnectionLost,
  migrate as migratePostgres,
  openPostgres,
  poolConfig,
  transaction,
} from './database.js';
export { createPostgresIdempotencyStore } from './idempotencyStore.js';
export { createPostgresStateStore } from './stateStore.js';
