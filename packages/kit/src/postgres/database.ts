import type pg from 'pg';
import { KeelError } from '../errors.js';
import { redactUrl } from '../backend/backend.js';

/** The kit's tables, one migration each, applied in order; prefixed so they share a database with the supervisor's. */
const migrations: readonly string[] = [
  `CREATE TABLE keel_idempotency (
     scope TEXT COLLATE "C" NOT NULL, key TEXT COLLATE "C" NOT NULL, fingerprint TEXT NOT NULL,
     state TEXT NOT NULL CHECK (state IN ('in_progress', 'completed')), owner TEXT, token TEXT,
     lease_expires_at BIGINT, result TEXT, created_at BIGINT NOT NULL, completed_at BIGINT,
     expires_at BIGINT NOT NULL, attempts INT NOT NULL DEFAULT 1, PRIMARY KEY (scope, key));
   CREATE INDEX keel_idempotency_expires ON keel_idempotency (expires_at);
   CREATE TABLE keel_audit_log (
     seq BIGINT PRIMARY KEY, at TEXT NOT NULL, server TEXT NOT NULL, tool TEXT NOT NULL, args TEXT NOT NULL,
     outcome TEXT NOT NULL, error_code TEXT, idempotency_key TEXT, result_sha256 TEXT, trace_id TEXT,
     actor TEXT, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
   CREATE TABLE keel_audit_head (id INT PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL, hash TEXT NOT NULL);
   INSERT INTO keel_audit_head (id, seq, hash) VALUES (1, 0, '${'0'.repeat(64)}');
   CREATE FUNCTION keel_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS
     $$ BEGIN RAISE EXCEPTION 'keel_audit_log is append-only'; END $$;
   CREATE TRIGGER keel_audit_log_no_change BEFORE UPDATE OR DELETE ON keel_audit_log
     FOR EACH ROW EXECUTE FUNCTION keel_audit_log_append_only();
   CREATE TABLE keel_server_state (
     namespace TEXT COLLATE "C" NOT NULL, key TEXT COLLATE "C" NOT NULL, value TEXT NOT NULL,
     version BIGINT NOT NULL, updated_at BIGINT NOT NULL, expires_at BIGINT, PRIMARY KEY (namespace, key));
   CREATE TABLE keel_secrets (name TEXT PRIMARY KEY, value BYTEA NOT NULL);`,
];

/**
 * How long a connection may sit inside a transaction between statements before PostgreSQL ends its
 * session. A process stopped mid-transaction (SIGSTOP, a VM paused, a debugger) otherwise keeps its
 * row locks for as long as it is stopped — the chain's head, a task's ownership row — and every other
 * process queues behind it: a task whose owner stalled could not be taken over. Our transactions run
 * their statements back to back, so a gap this long is a stalled process, not slow work. Below the
 * supervisor's stale-heartbeat time (10 s), so a stalled owner's locks are gone before anyone tries
 * to take its task over.
 */
export const idleInTransactionMs = 5_000;

/**
 * Whether `error` (or one of its causes) says the connection ended under the statement rather than
 * the statement failed: the session was terminated (57P01-57P03: an administrator, a crash, a
 * restart; 25P03: idle in a transaction past its timeout), a connection exception (class 08), or
 * the socket went away. Whether a write in flight landed is then unknown.
 */
export function isConnectionLost(error: unknown): boolean {
  for (let at = error, depth = 0; at !== undefined && at !== null && depth < 5; depth++) {
    const { code, message, cause } = at as { code?: unknown; message?: unknown; cause?: unknown };
    if (typeof code === 'string') {
      if (code.startsWith('08') || ['57P01', '57P02', '57P03', '25P03'].includes(code)) return true;
      if (['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT'].includes(code)) return true;
    }
    if (
      typeof message === 'string' &&
      /^(Connection terminated|Client has encountered a connection error|Client was closed)/.test(message)
    )
      return true;
    at = cause;
  }
  return false;
}

/**
 * `work`, tried again when the connection was lost under it ({@link isConnectionLost}): after 100,
 * 400 and 1,600 ms, each time on a fresh connection from the pool. Only for work that is safe to
 * run twice because a landed first try is recognised (each caller says how); any other failure,
 * or a fourth lost connection, is thrown.
 */
export async function againWhenLost<T>(work: (attempt: number) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work(attempt);
    } catch (error) {
      if (attempt >= lostAttempts || !isConnectionLost(error)) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100 * 4 ** (attempt - 1)));
    }
  }
}

const lostAttempts = 4;

/** The settings every Keel pool uses: a stalled holder's locks are released ({@link idleInTransactionMs}). */
export function poolConfig(url: string, max: number): pg.PoolConfig {
  return { connectionString: url, max, idle_in_transaction_session_timeout: idleInTransactionMs };
}

/** Serialises migrations across every process that opens the database at once. */
const migrationLock = 0x6b65656c; // 'keel'

/**
 * Opens a pool on `url` (loading `pg` only now: SQLite users never pay for it), checks the server
 * answers and brings the kit's tables up to date. Safe to run from many replicas at once.
 */
export async function openPostgres(url: string, options: { max?: number } = {}): Promise<pg.Pool> {
  const { default: postgres } = await import('pg');
  const pool = new postgres.Pool(poolConfig(url, options.max ?? 8));
  // An idle client's connection dropping must not crash the server; the next query reconnects.
  pool.on('error', () => undefined);
  try {
    await migrate(pool);
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw new KeelError(
      'UNAVAILABLE',
      `cannot use the PostgreSQL store at ${redactUrl(url)}: ${(error as Error).message}`,
      {
        cause: error,
        hint: 'Check that the server runs and the URL (user, password, database) is right: psql "URL" -c "select 1".',
      },
    );
  }
  return pool;
}

/** Applies the migrations not yet applied, each in its own transaction, under an advisory lock. */
export async function migrate(pool: pg.Pool): Promise<{ from: number; to: number }> {
  return transaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock($1)', [migrationLock]);
    await client.query('CREATE TABLE IF NOT EXISTS keel_kit_schema (version INT NOT NULL)');
    const found = await client.query<{ version: number }>('SELECT version FROM keel_kit_schema');
    const from = found.rows[0]?.version ?? 0;
    if (found.rows.length === 0) await client.query('INSERT INTO keel_kit_schema (version) VALUES (0)');
    for (let version = from; version < migrations.length; version++) await client.query(migrations[version]!);
    await client.query('UPDATE keel_kit_schema SET version = $1', [migrations.length]);
    return { from, to: migrations.length };
  });
}

/**
 * Runs `body` in one transaction on one pooled connection: committed when it returns, rolled back when
 * it throws. A checked-out connection that the server ends (the idle-in-transaction timeout, a restart)
 * emits `error` on its client, which nobody else listens to while it is out of the pool: heard here, so
 * it fails this transaction with the server's reason instead of ending the process.
 */
export async function transaction<T>(pool: pg.Pool, body: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let lost: Error | undefined;
  const onLost = (error: Error) => {
    lost ??= error;
  };
  client.on('error', onLost);
  let result: T;
  try {
    await client.query('BEGIN');
    result = await body(client);
    await client.query('COMMIT');
  } catch (error) {
    // A connection that cannot roll back is destroyed, not handed back for the next caller to find broken.
    const broken = await client.query('ROLLBACK').then(
      () => lost,
      (rollback: unknown) => lost ?? (rollback instanceof Error ? rollback : new Error(String(rollback))),
    );
    client.off('error', onLost);
    client.release(broken);
    throw lost ?? error;
  }
  client.off('error', onLost);
  client.release(lost);
  return result;
}

/** Locks `parts` as one key for the rest of the transaction: writers of the same key queue here, others pass. */
export async function lockKey(client: pg.PoolClient, ...parts: string[]): Promise<void> {
  await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [JSON.stringify(parts)]);
}
