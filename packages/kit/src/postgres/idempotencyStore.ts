import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { AuditEntry } from '../audit/auditLog.js';
import type { ClaimRequest, ClaimResult, IdempotencyRecord, IdempotencyStore } from '../idempotency/store.js';
import { appendAfter } from './auditLog.js';
import { againWhenLost, lockKey, transaction } from './database.js';

interface Row {
  scope: string;
  key: string;
  fingerprint: string;
  state: 'in_progress' | 'completed';
  owner: string | null;
  token: string | null;
  lease_expires_at: string | null;
  result: string | null;
  created_at: string;
  completed_at: string | null;
  expires_at: string;
  attempts: number;
}

const defaultTtlMs = 24 * 60 * 60 * 1000;

/**
 * The idempotency store on PostgreSQL, for server replicas that share one database: the same
 * contract as the SQLite store (`idempotencyStoreConformance`). A claim takes a transaction-scoped
 * advisory lock on its key, so two replicas racing for one key queue there and exactly one wins;
 * a completion appends its audit row in the same transaction. Times are the callers' clocks, as in
 * SQLite: keep replicas' clocks in sync (NTP), since leases compare them.
 *
 * A connection lost under a call (a failover, an administrator's pg_terminate_backend) does not
 * fail it: the call is tried again on a fresh connection ({@link againWhenLost}), and a first try
 * that landed before its answer was lost is recognised — a claim by its token, a completion by its
 * time and result — so a retry never claims a key twice or appends a completion's audit row again.
 */
export function createPostgresIdempotencyStore(
  pool: pg.Pool,
  options: { identity?: string } = {},
): IdempotencyStore {
  // The TTL each claim asked for, so `complete` restarts the clock at completion.
  const ttlByToken = new Map<string, number>();
  return {
    auditsCompletions: true,
    // Named by `openPostgresBackend` (one name per database); a store made without one is never vouched for.
    ...(options.identity === undefined ? {} : { identity: options.identity }),
    async claim(request) {
      // One token for every try: a try that landed is then this claim's own row.
      const token = randomUUID();
      const seen: Seen = {};
      const result = await againWhenLost(async () => {
        // The common case in one round trip: nobody has the key, so the primary key lets exactly
        // one insert through. Only when a row is there does the claim lock the key and decide.
        const fresh = await insertClaim(pool, request, token);
        return (
          fresh ??
          (await transaction(pool, async (client) => {
            await lockKey(client, 'idempotency', request.scope, request.key);
            return claimLocked(client, request, token, seen);
          }))
        );
      });
      if (result.kind === 'claimed' || result.kind === 'recovered')
        ttlByToken.set(result.token, request.ttlMs);
      return result;
    },
    async renew(scope, key, token, leaseMs) {
      // The same lease set twice is one lease.
      const updated = await againWhenLost(() =>
        pool.query(
          `UPDATE keel_idempotency SET lease_expires_at = $1
           WHERE scope = $2 AND key = $3 AND token = $4 AND state = 'in_progress'`,
          [Date.now() + leaseMs, scope, key, token],
        ),
      );
      return updated.rowCount === 1;
    },
    async complete(scope, key, token, result, audit?: AuditEntry) {
      const now = Date.now();
      const ttl = ttlByToken.get(token) ?? defaultTtlMs;
      ttlByToken.delete(token);
      const text = JSON.stringify(result);
      const values = [text, now, now + ttl, scope, key, token];
      return againWhenLost(async (attempt) => {
        // A try whose connection was lost may have committed: the row completed at this call's
        // time with this result is this completion (with its audit row, written in its transaction).
        if (attempt > 1 && (await completedAs(pool, scope, key, now, text))) return true;
        if (audit === undefined) return (await pool.query(completeSql, values)).rowCount === 1;
        return transaction(pool, async (client) => {
          // Completes and, only if that worked, locks the audit chain's head, in one statement.
          const head = await client.query<{ seq: string; hash: string }>(
            `WITH done AS (${completeSql} RETURNING 1)
             SELECT seq, hash FROM keel_audit_head WHERE id = 1 AND EXISTS (SELECT 1 FROM done) FOR UPDATE`,
            values,
          );
          const current = head.rows[0];
          if (current === undefined) return false;
          await appendAfter(client, current, audit);
          return true;
        });
      });
    },
    async release(scope, key, token) {
      ttlByToken.delete(token);
      // Deleting by token twice deletes once.
      await againWhenLost(() =>
        pool.query(
          `DELETE FROM keel_idempotency WHERE scope = $1 AND key = $2 AND token = $3 AND state = 'in_progress'`,
          [scope, key, token],
        ),
      );
    },
    async get(scope, key) {
      const found = await againWhenLost(() =>
        pool.query<Row>('SELECT * FROM keel_idempotency WHERE scope = $1 AND key = $2', [scope, key]),
      );
      const row = found.rows[0];
      return row === undefined ? undefined : toRecord(row);
    },
    async reap(now = Date.now()) {
      // What expired stays expired: a second sweep deletes what the first did not.
      const reaped = await againWhenLost(() =>
        pool.query(
          `DELETE FROM keel_idempotency WHERE expires_at <= $1 AND (state = 'completed' OR lease_expires_at <= $1)`,
          [now],
        ),
      );
      return reaped.rowCount ?? 0;
    },
    async close() {
      ttlByToken.clear();
    },
  };
}

const completeSql = `UPDATE keel_idempotency SET state = 'completed', result = $1, completed_at = $2, owner = NULL,
    token = NULL, lease_expires_at = NULL, expires_at = $3
  WHERE scope = $4 AND key = $5 AND token = $6 AND state = 'in_progress'`;

const insertSql = `INSERT INTO keel_idempotency
    (scope, key, fingerprint, state, owner, token, lease_expires_at, created_at, expires_at)
  VALUES ($1, $2, $3, 'in_progress', $4, $5, $6, $7, $8) ON CONFLICT (scope, key) DO NOTHING`;

/** Inserts a new claim if the key is free; undefined when a row is already there. */
async function insertClaim(
  db: pg.Pool | pg.PoolClient,
  request: ClaimRequest,
  token: string,
): Promise<Extract<ClaimResult, { kind: 'claimed' }> | undefined> {
  const now = request.now ?? Date.now();
  const inserted = await db.query(insertSql, [
    request.scope,
    request.key,
    request.fingerprint,
    request.owner,
    token,
    now + request.leaseMs,
    now,
    now + request.ttlMs,
  ]);
  return inserted.rowCount === 1 ? { kind: 'claimed', token } : undefined;
}

/** What a claim's try read before it wrote, for a later try to report if that write landed. */
interface Seen {
  previousOwner?: string;
}

/** Whether the key's row is a completion made at `at` with `result`: a completion's own, landed. */
async function completedAs(pool: pg.Pool, scope: string, key: string, at: number, result: string) {
  const found = await pool.query(
    `SELECT 1 FROM keel_idempotency
      WHERE scope = $1 AND key = $2 AND state = 'completed' AND completed_at = $3 AND result = $4`,
    [scope, key, at, result],
  );
  return found.rowCount === 1;
}

/** The claim's decision, under the key's lock: the same rules as the SQLite store. */
async function claimLocked(
  client: pg.PoolClient,
  request: ClaimRequest,
  token: string,
  seen: Seen,
): Promise<ClaimResult> {
  const now = request.now ?? Date.now();
  const leaseExpiresAt = now + request.leaseMs;
  const found = await client.query<Row>('SELECT * FROM keel_idempotency WHERE scope = $1 AND key = $2', [
    request.scope,
    request.key,
  ]);
  const row = found.rows[0];
  // Gone since the insert found it (reaped, released): a new claim, unless another just took it.
  if (row === undefined)
    return (await insertClaim(client, request, token)) ?? claimLocked(client, request, token, seen);
  // An earlier try of this claim landed and its answer was lost: the key is this claim's already.
  if (row.state === 'in_progress' && row.token === token)
    return row.attempts > 1
      ? {
          kind: 'recovered',
          token,
          previousOwner: seen.previousOwner ?? 'unknown',
          attempts: row.attempts,
        }
      : { kind: 'claimed', token };
  const leaseEnd = row.lease_expires_at === null ? 0 : Number(row.lease_expires_at);
  const expired = Number(row.expires_at) <= now && (row.state === 'completed' || leaseEnd <= now);
  if (!expired) {
    if (row.fingerprint !== request.fingerprint)
      return { kind: 'conflict', storedFingerprint: row.fingerprint };
    if (row.state === 'completed')
      return {
        kind: 'completed',
        result: JSON.parse(row.result ?? 'null'),
        completedAt: row.completed_at === null ? now : Number(row.completed_at),
      };
    const abandoned = request.takeOverFrom !== undefined && row.owner === request.takeOverFrom;
    if (leaseEnd > now && !abandoned)
      return { kind: 'in_progress', owner: row.owner ?? 'unknown', leaseExpiresAt: leaseEnd };
    seen.previousOwner = row.owner ?? 'unknown';
    await client.query(
      `UPDATE keel_idempotency SET owner = $1, token = $2, lease_expires_at = $3, attempts = attempts + 1
       WHERE scope = $4 AND key = $5`,
      [request.owner, token, leaseExpiresAt, request.scope, request.key],
    );
    return { kind: 'recovered', token, previousOwner: row.owner ?? 'unknown', attempts: row.attempts + 1 };
  }
  await client.query('DELETE FROM keel_idempotency WHERE scope = $1 AND key = $2', [
    request.scope,
    request.key,
  ]);
  // Expired and deleted above: claim it afresh (the key's lock keeps others out of the slow path; a
  // fast-path insert racing this one is settled by the primary key).
  return (await insertClaim(client, request, token)) ?? claimLocked(client, request, token, seen);
}

function toRecord(row: Row): IdempotencyRecord {
  return {
    scope: row.scope,
    key: row.key,
    fingerprint: row.fingerprint,
    state: row.state,
    owner: row.owner,
    leaseExpiresAt: row.lease_expires_at === null ? null : Number(row.lease_expires_at),
    createdAt: Number(row.created_at),
    completedAt: row.completed_at === null ? null : Number(row.completed_at),
    expiresAt: Number(row.expires_at),
    attempts: row.attempts,
    result: row.result === null ? undefined : JSON.parse(row.result),
  };
}
