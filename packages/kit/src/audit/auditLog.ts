import type Database from 'better-sqlite3';
import { canonicalJson, sha256Hex } from '../canonical.js';

/** One audited call as the caller describes it; the log adds sequence, time and the chain. */
export interface AuditEntry {
  server: string;
  tool: string;
  /** Arguments after redaction. */
  args: unknown;
  outcome: 'ok' | 'error' | 'replayed';
  errorCode?: string | undefined;
  idempotencyKey?: string | undefined;
  /** Hash of the stored result, so a row proves what the caller got back. */
  resultSha256?: string | undefined;
  traceId?: string | undefined;
  /** Who approved, for actions that needed approval. */
  actor?: string | undefined;
}

export interface AuditRow extends Required<Pick<AuditEntry, 'server' | 'tool' | 'args' | 'outcome'>> {
  seq: number;
  at: string;
  errorCode: string | null;
  idempotencyKey: string | null;
  resultSha256: string | null;
  traceId: string | null;
  actor: string | null;
  prevHash: string;
  hash: string;
}

export type AuditVerification =
  { ok: true; rows: number; head: string } | { ok: false; rows: number; firstBadSeq: number; reason: string };

/**
 * The hash-chained audit log. Async like the idempotency store, so a shared backend drops in; must
 * pass `auditLogConformance` (`@keel/kit/conformance`).
 */
export interface AuditLog {
  append(entry: AuditEntry): Promise<AuditRow>;
  verify(): Promise<AuditVerification>;
  list(options?: { afterSeq?: number; limit?: number }): Promise<AuditRow[]>;
}

export const genesis = '0'.repeat(64);

const schema = `
CREATE TABLE IF NOT EXISTS audit_log (
  seq INTEGER PRIMARY KEY,
  at TEXT NOT NULL,
  server TEXT NOT NULL,
  tool TEXT NOT NULL,
  args TEXT NOT NULL,
  outcome TEXT NOT NULL,
  error_code TEXT,
  idempotency_key TEXT,
  result_sha256 TEXT,
  trace_id TEXT,
  actor TEXT,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
  BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
  BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
`;

/** An audit row as stored, column for column. */
export interface Row {
  seq: number;
  at: string;
  server: string;
  tool: string;
  args: string;
  outcome: AuditEntry['outcome'];
  error_code: string | null;
  idempotency_key: string | null;
  result_sha256: string | null;
  trace_id: string | null;
  actor: string | null;
  prev_hash: string;
  hash: string;
}

/** The chain: a row's hash covers the previous row's hash and its own content. Every backend hashes alike. */
export function rowHash(prevHash: string, row: Omit<Row, 'hash' | 'prev_hash'>): string {
  return sha256Hex(`${prevHash}\n${canonicalJson(row)}`);
}

/** The SQLite audit log, which can also append inside a transaction of its own database. */
export interface SqliteAuditLog extends AuditLog {
  readonly database: Database.Database;
  /** Appends synchronously, joining the caller's open transaction on the same database if there is one. */
  appendNow(entry: AuditEntry): AuditRow;
}

/**
 * The append-only audit log in the state database. Each row's hash covers its content and the
 * previous row's hash, so changing, removing or reordering any row breaks the chain from there on.
 * Triggers refuse UPDATE and DELETE through SQLite; `verify` catches edits made around them.
 */
export function createAuditLog(db: Database.Database): SqliteAuditLog {
  db.exec(schema);
  const last = db.prepare<[], { seq: number; hash: string }>(
    'SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1',
  );
  const insert = db.prepare(
    `INSERT INTO audit_log (seq, at, server, tool, args, outcome, error_code, idempotency_key, result_sha256, trace_id, actor, prev_hash, hash)
     VALUES (@seq, @at, @server, @tool, @args, @outcome, @error_code, @idempotency_key, @result_sha256, @trace_id, @actor, @prev_hash, @hash)`,
  );
  const page = db.prepare<[number, number], Row>(
    'SELECT * FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?',
  );

  const append = db.transaction((entry: AuditEntry): AuditRow => {
    const row = chainedRow(last.get(), entry);
    insert.run(row);
    return toAuditRow(row);
  });

  return {
    database: db,
    // Outside a transaction, IMMEDIATE takes the write lock before reading the chain's head; inside
    // one (a completion in the idempotency store), better-sqlite3 nests it as a savepoint.
    appendNow: (entry) => (db.inTransaction ? append(entry) : append.immediate(entry)),
    append: async (entry) => append.immediate(entry),
    verify: () => verifyChain(async (after, limit) => page.all(after, limit)),
    async list(options = {}) {
      return page.all(options.afterSeq ?? 0, Math.min(options.limit ?? 100, 1000)).map(toAuditRow);
    },
  };
}

/** The next row of the chain after `previous` (the head, or undefined for the first row). */
export function chainedRow(
  previous: { seq: number; hash: string } | undefined,
  entry: AuditEntry,
  at: string = new Date().toISOString(),
): Row {
  const content = {
    seq: (previous?.seq ?? 0) + 1,
    at,
    server: entry.server,
    tool: entry.tool,
    args: canonicalJson(entry.args ?? null),
    outcome: entry.outcome,
    error_code: entry.errorCode ?? null,
    idempotency_key: entry.idempotencyKey ?? null,
    result_sha256: entry.resultSha256 ?? null,
    trace_id: entry.traceId ?? null,
    actor: entry.actor ?? null,
  };
  const prevHash = previous?.hash ?? genesis;
  return { ...content, prev_hash: prevHash, hash: rowHash(prevHash, content) };
}

/** Walks the chain in pages (bounded memory for a long log) and names the first row that breaks it. */
export async function verifyChain(
  page: (afterSeq: number, limit: number) => Promise<Row[]>,
): Promise<AuditVerification> {
  let expectedPrev = genesis;
  let expectedSeq = 1;
  let rows = 0;
  for (let after = 0; ;) {
    const batch = await page(after, 1000);
    if (batch.length === 0) break;
    for (const row of batch) {
      const { hash, prev_hash: prevHash, ...content } = row;
      if (row.seq !== expectedSeq)
        return {
          ok: false,
          rows,
          firstBadSeq: expectedSeq,
          reason: `row ${expectedSeq} is missing (next row is ${row.seq})`,
        };
      if (prevHash !== expectedPrev)
        return {
          ok: false,
          rows,
          firstBadSeq: row.seq,
          reason: `row ${row.seq} does not follow row ${row.seq - 1}`,
        };
      if (rowHash(prevHash, content) !== hash)
        return {
          ok: false,
          rows,
          firstBadSeq: row.seq,
          reason: `row ${row.seq} was altered after it was written`,
        };
      expectedPrev = hash;
      expectedSeq++;
      rows++;
    }
    after = batch[batch.length - 1]!.seq;
  }
  return { ok: true, rows, head: expectedPrev };
}

export function toAuditRow(row: Row): AuditRow {
  return {
    seq: row.seq,
    at: row.at,
    server: row.server,
    tool: row.tool,
    args: JSON.parse(row.args),
    outcome: row.outcome,
    errorCode: row.error_code,
    idempotencyKey: row.idempotency_key,
    resultSha256: row.result_sha256,
    traceId: row.trace_id,
    actor: row.actor,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}
