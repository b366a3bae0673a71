import type pg from 'pg';
import {
  chainedRow,
  toAuditRow,
  verifyChain,
  type AuditEntry,
  type AuditLog,
  type AuditRow,
  type Row,
} from '../audit/auditLog.js';
import { againWhenLost, transaction } from './database.js';

const columns =
  'seq, at, server, tool, args, outcome, error_code, idempotency_key, result_sha256, trace_id, actor, prev_hash, hash';

/**
 * The hash-chained audit log on PostgreSQL. Concurrent writers from every replica queue on the
 * chain's head row (SELECT … FOR UPDATE), so the log stays one chain, verifiable with the same
 * hashes as SQLite's. A trigger refuses UPDATE and DELETE; `verify` catches edits made around it.
 */
export function createPostgresAuditLog(pool: pg.Pool): AuditLog {
  const page = async (afterSeq: number, limit: number): Promise<Row[]> => {
    const found = await pool.query<Row & { seq: string }>(
      `SELECT ${columns} FROM keel_audit_log WHERE seq > $1 ORDER BY seq LIMIT $2`,
      [afterSeq, limit],
    );
    return found.rows.map((row) => ({ ...row, seq: Number(row.seq) }));
  };
  return {
    // A lost connection is tried again (the chaos campaign's pg_terminate_backend): the row's time is
    // fixed once, so a retry can tell its own landed first try at the head of the chain by the hash.
    append: (entry) => {
      const at = new Date().toISOString();
      return againWhenLost((attempt) =>
        transaction(pool, async (client) => {
          const head = await lockHead(client);
          if (attempt > 1) {
            const landed = await landedAt(client, head, entry, at);
            if (landed !== undefined) return landed;
          }
          return appendAfter(client, head, entry, at);
        }),
      );
    },
    verify: () => verifyChain(page),
    async list(options = {}) {
      return (await page(options.afterSeq ?? 0, Math.min(options.limit ?? 100, 1000))).map(toAuditRow);
    },
  };
}

/** Appends inside the caller's transaction, holding the chain's head until it commits. */
export async function appendAudited(client: pg.PoolClient, entry: AuditEntry): Promise<AuditRow> {
  return appendAfter(client, await lockHead(client), entry);
}

/** The chain's head, locked FOR UPDATE until the caller's transaction ends. */
async function lockHead(client: pg.PoolClient): Promise<{ seq: string; hash: string }> {
  const head = await client.query<{ seq: string; hash: string }>(
    'SELECT seq, hash FROM keel_audit_head WHERE id = 1 FOR UPDATE',
  );
  return head.rows[0]!;
}

/**
 * The head row, if it is this entry appended at `at`: its hash is the one this entry gets after its
 * predecessor. The hash covers every column and the time to the millisecond, so another call's row
 * matches only if it was the same call, with the same arguments and result, in the same millisecond.
 */
async function landedAt(
  client: pg.PoolClient,
  head: { seq: string; hash: string },
  entry: AuditEntry,
  at: string,
): Promise<AuditRow | undefined> {
  const seq = Number(head.seq);
  if (seq === 0) return undefined;
  // The head holds its row's hash; only the row's predecessor hash is needed to recompute it.
  const found = await client.query<{ prev_hash: string }>(
    'SELECT prev_hash FROM keel_audit_log WHERE seq = $1',
    [seq],
  );
  const prevHash = found.rows[0]?.prev_hash;
  if (prevHash === undefined) return undefined;
  const mine = chainedRow({ seq: seq - 1, hash: prevHash }, entry, at);
  return mine.hash === head.hash ? toAuditRow(mine) : undefined;
}

/** Appends the row after `head` (locked FOR UPDATE by the caller) and moves the head, in one statement. */
export async function appendAfter(
  client: pg.PoolClient,
  head: { seq: string | number; hash: string },
  entry: AuditEntry,
  at?: string,
): Promise<AuditRow> {
  const row = chainedRow({ seq: Number(head.seq), hash: head.hash }, entry, at);
  await client.query(
    `WITH appended AS (
       INSERT INTO keel_audit_log (${columns}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
       RETURNING seq, hash)
     UPDATE keel_audit_head SET seq = appended.seq, hash = appended.hash FROM appended WHERE id = 1`,
    [
      row.seq,
      row.at,
      row.server,
      row.tool,
      row.args,
      row.outcome,
      row.error_code,
      row.idempotency_key,
      row.result_sha256,
      row.trace_id,
      row.actor,
      row.prev_hash,
      row.hash,
    ],
  );
  return toAuditRow(row);
}
