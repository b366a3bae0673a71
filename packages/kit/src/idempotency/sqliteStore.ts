import { randomUUID } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { AuditEntry, SqliteAuditLog } from '../audit/auditLog.js';
import type { ClaimRequest, ClaimResult, IdempotencyRecord, IdempotencyStore } from './store.js';

interface Row {
  scope: string;
  key: string;
  fingerprint: string;
  state: 'in_progress' | 'completed';
  owner: string | null;
  token: string | null;
  lease_expires_at: number | null;
  result: string | null;
  created_at: number;
  completed_at: number | null;
  expires_at: number;
  attempts: number;
}

const schema = `
CREATE TABLE IF NOT EXISTS idempotency (
  scope TEXT NOT NULL,
  key TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('in_progress', 'completed')),
  owner TEXT,
  token TEXT,
  lease_expires_at INTEGER,
  result TEXT,
  created_at INTEGER NOT NULL,
  completed_at INTEGER,
  expires_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 1,
  PRIMARY KEY (scope, key)
) WITHOUT ROWID;
DROP INDEX IF EXISTS idempotency_expires;
CREATE TABLE IF NOT EXISTS idempotency_store (id TEXT NOT NULL);
`;
// No index on expires_at (files from before had one; it goes on open): every claim inserts a row and
// every completion moves its expiry, so the index doubled the pages each transaction writes, while
// only the reaper reads by expiry — a scan at open and once an hour.

/**
 * The SQLite idempotency store on an open better-sqlite3 database (see `openStateDatabase`). Every
 * claim is one IMMEDIATE transaction, so two processes sharing the file never both win a key.
 */
export function createSqliteIdempotencyStore(
  db: Database.Database,
  options: { audit?: SqliteAuditLog } = {},
): IdempotencyStore {
  const audit = options.audit;
  if (audit !== undefined && audit.database !== db)
    throw new TypeError('the audit log given to the idempotency store must be on the same database');
  db.exec(schema);
  const select = db.prepare<[string, string], Row>('SELECT * FROM idempotency WHERE scope = ? AND key = ?');
  const insert = db.prepare(
    `INSERT INTO idempotency (scope, key, fingerprint, state, owner, token, lease_expires_at, created_at, expires_at)
     VALUES (?, ?, ?, 'in_progress', ?, ?, ?, ?, ?)`,
  );
  const takeOver = db.prepare(
    `UPDATE idempotency SET owner = @owner, token = @token, lease_expires_at = @leaseExpiresAt,
       attempts = attempts + 1 WHERE scope = @scope AND key = @key`,
  );
  const deleteOne = db.prepare('DELETE FROM idempotency WHERE scope = ? AND key = ?');
  const renewStmt = db.prepare(
    `UPDATE idempotency SET lease_expires_at = ? WHERE scope = ? AND key = ? AND token = ? AND state = 'in_progress'`,
  );
  const completeStmt = db.prepare(
    `UPDATE idempotency SET state = 'completed', result = ?, completed_at = ?, owner = NULL, token = NULL,
       lease_expires_at = NULL, expires_at = ? WHERE scope = ? AND key = ? AND token = ? AND state = 'in_progress'`,
  );
  const releaseStmt = db.prepare(
    `DELETE FROM idempotency WHERE scope = ? AND key = ? AND token = ? AND state = 'in_progress'`,
  );
  const reapStmt = db.prepare(
    `DELETE FROM idempotency WHERE expires_at <= ? AND (state = 'completed' OR lease_expires_at <= ?)`,
  );
  const completeAudited = db.transaction(
    (
      result: string,
      now: number,
      expiresAt: number,
      scope: string,
      key: string,
      token: string,
      entry: AuditEntry | undefined,
    ): boolean => {
      if (completeStmt.run(result, now, expiresAt, scope, key, token).changes !== 1) return false;
      if (entry !== undefined) audit?.appendNow(entry);
      return true;
    },
  );
  // TTLs per scope are remembered from claims so `complete` can restart the clock at completion.
  const ttlByToken = new Map<string, number>();

  const claim = db.transaction((request: ClaimRequest): ClaimResult => {
    const now = request.now ?? Date.now();
    const token = randomUUID();
    const leaseExpiresAt = now + request.leaseMs;
    const row = select.get(request.scope, request.key);
    if (
      row !== undefined &&
      row.expires_at <= now &&
      (row.state === 'completed' || (row.lease_expires_at ?? 0) <= now)
    ) {
      deleteOne.run(request.scope, request.key);
    } else if (row !== undefined) {
      if (row.fingerprint !== request.fingerprint)
        return { kind: 'conflict', storedFingerprint: row.fingerprint };
      if (row.state === 'completed') {
        return {
          kind: 'completed',
          result: JSON.parse(row.result ?? 'null'),
          completedAt: row.completed_at ?? now,
        };
      }
      if (
        (row.lease_expires_at ?? 0) > now &&
        (request.takeOverFrom === undefined || row.owner !== request.takeOverFrom)
      ) {
        return {
          kind: 'in_progress',
          owner: row.owner ?? 'unknown',
          leaseExpiresAt: row.lease_expires_at ?? now,
        };
      }
      takeOver.run({ scope: request.scope, key: request.key, owner: request.owner, token, leaseExpiresAt });
      ttlByToken.set(token, request.ttlMs);
      return { kind: 'recovered', token, previousOwner: row.owner ?? 'unknown', attempts: row.attempts + 1 };
    }
    insert.run(
      request.scope,
      request.key,
      request.fingerprint,
      request.owner,
      token,
      leaseExpiresAt,
      now,
      now + request.ttlMs,
    );
    ttlByToken.set(token, request.ttlMs);
    return { kind: 'claimed', token };
  });

  // Whatever expired while no server ran goes now.
  reapStmt.run(Date.now(), Date.now());
  // Named once, by the first process to open the file: every process sharing it reads the same name.
  const identity = db
    .transaction(() => {
      const row = db.prepare<[], { id: string }>('SELECT id FROM idempotency_store LIMIT 1').get();
      if (row !== undefined) return row.id;
      const id = randomUUID();
      db.prepare('INSERT INTO idempotency_store (id) VALUES (?)').run(id);
      return id;
    })
    .immediate();

  // SQLite answers synchronously; the Promises are the interface a networked backend needs.
  return {
    claim: async (request) => claim.immediate(request),
    renew: async (scope, key, token, leaseMs) =>
      renewStmt.run(Date.now() + leaseMs, scope, key, token).changes === 1,
    auditsCompletions: audit !== undefined,
    identity,
    async complete(scope, key, token, result, entry) {
      const now = Date.now();
      const ttl = ttlByToken.get(token) ?? 24 * 60 * 60 * 1000;
      ttlByToken.delete(token);
      return completeAudited.immediate(JSON.stringify(result), now, now + ttl, scope, key, token, entry);
    },
    async release(scope, key, token) {
      ttlByToken.delete(token);
      releaseStmt.run(scope, key, token);
    },
    async get(scope, key) {
      const row = select.get(scope, key);
      return row === undefined ? undefined : toRecord(row);
    },
    reap: async (now = Date.now()) => reapStmt.run(now, now).changes,
    async close() {
      ttlByToken.clear();
    },
  };
}

function toRecord(row: Row): IdempotencyRecord {
  return {
    scope: row.scope,
    key: row.key,
    fingerprint: row.fingerprint,
    state: row.state,
    owner: row.owner,
    leaseExpiresAt: row.lease_expires_at,
    createdAt: row.created_at,
    completedAt: row.completed_at,
    expiresAt: row.expires_at,
    attempts: row.attempts,
    result: row.result === null ? undefined : JSON.parse(row.result),
  };
}
