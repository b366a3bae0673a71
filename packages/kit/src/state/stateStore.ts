import type Database from 'better-sqlite3';

/** One stored value with the version every write bumps (compare-and-set reads it back). */
export interface StateEntry<TValue = unknown> {
  key: string;
  value: TValue;
  /** Starts at 1 and grows by one with every write to the key; never reused, expiry included. */
  version: number;
  updatedAt: number;
  /** When set, the entry reads as absent from this time on (ms since the epoch). */
  expiresAt: number | null;
}

/**
 * A write's precondition: `ifVersion: 0` means the key must be absent (or expired); any other number
 * means the entry must be at exactly that version. Without one the write is unconditional.
 */
export interface StateWriteOptions {
  ifVersion?: number;
  /** The entry expires this long after the write; without it, it never does. */
  ttlMs?: number;
}

export type StateOp =
  | { kind: 'put'; key: string; value: unknown; ifVersion?: number; ttlMs?: number }
  | { kind: 'delete'; key: string; ifVersion?: number };

/** A conditional write that lost: `current` is what the key holds now (undefined when absent). */
export interface StateConflict {
  ok: false;
  key: string;
  current: StateEntry | undefined;
}

export type StatePutResult<TValue> = { ok: true; entry: StateEntry<TValue> } | StateConflict;
export type StateCommitResult = { ok: true; versions: Record<string, number> } | StateConflict;

/**
 * A namespaced key-value store for a server's own durable state (plans, releases, locks, used
 * nonces). Every method returns a Promise so a networked backend (PostgreSQL) can implement the same
 * interface; every write is atomic across the processes that share the backend, and `commit` applies
 * several writes all or none. Locks are entries with a TTL taken with `ifVersion: 0`.
 */
export interface StateStore {
  readonly namespace: string;
  get<TValue>(key: string): Promise<StateEntry<TValue> | undefined>;
  /** Live entries whose key starts with `prefix`, in key order, at most `limit` of them, after `after`. */
  list<TValue>(options: { prefix: string; limit: number; after?: string }): Promise<StateEntry<TValue>[]>;
  put<TValue>(key: string, value: TValue, options?: StateWriteOptions): Promise<StatePutResult<TValue>>;
  /** Deletes when the precondition holds; `ok: true` also when there was nothing to delete. */
  delete(key: string, options?: { ifVersion?: number }): Promise<{ ok: true } | StateConflict>;
  /** Several writes in one transaction: all apply, or none and the first failed precondition is named. */
  commit(ops: readonly StateOp[]): Promise<StateCommitResult>;
}

export interface SqliteStateStoreOptions {
  /** The clock, for expiry; tests pass their own. */
  now?: () => number;
}

interface Row {
  key: string;
  value: string;
  version: number;
  updated_at: number;
  expires_at: number | null;
}

const schema = `
CREATE TABLE IF NOT EXISTS server_state (
  namespace TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  version INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  expires_at INTEGER,
  PRIMARY KEY (namespace, key)
) WITHOUT ROWID;
`;

const maxKeyLength = 512;

/**
 * The SQLite {@link StateStore} on an open state database (see `openStateDatabase`), keyed under
 * `namespace` so servers sharing the file never see each other's keys. Every write runs in one
 * IMMEDIATE transaction, so processes sharing the file serialise on it and a precondition is checked
 * and applied without a gap. SQLite is synchronous inside; the Promises are for the interface.
 */
export function createSqliteStateStore(
  db: Database.Database,
  namespace: string,
  options: SqliteStateStoreOptions = {},
): StateStore {
  if (namespace.length === 0) throw new TypeError('a state namespace must not be empty');
  const now = options.now ?? Date.now;
  db.exec(schema);
  const select = db.prepare<[string, string], Row>(
    'SELECT key, value, version, updated_at, expires_at FROM server_state WHERE namespace = ? AND key = ?',
  );
  // The prefix range uses the key index: every key starting with `prefix` sorts in [prefix, prefix + U+FFFF).
  const selectRange = db.prepare<[string, string, string, string, number, number], Row>(
    `SELECT key, value, version, updated_at, expires_at FROM server_state
     WHERE namespace = ? AND key >= ? AND key < ? AND key > ? AND (expires_at IS NULL OR expires_at > ?)
     ORDER BY key LIMIT ?`,
  );
  const upsert = db.prepare(
    `INSERT INTO server_state (namespace, key, value, version, updated_at, expires_at)
     VALUES (@namespace, @key, @value, @version, @now, @expiresAt)
     ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, version = excluded.version,
       updated_at = excluded.updated_at, expires_at = excluded.expires_at`,
  );
  const remove = db.prepare('DELETE FROM server_state WHERE namespace = ? AND key = ?');

  const toEntry = <TValue>(row: Row): StateEntry<TValue> => ({
    key: row.key,
    value: JSON.parse(row.value) as TValue,
    version: row.version,
    updatedAt: row.updated_at,
    expiresAt: row.expires_at,
  });
  const live = (row: Row | undefined, at: number): Row | undefined =>
    row !== undefined && (row.expires_at === null || row.expires_at > at) ? row : undefined;

  /** Applies ops in order inside the caller's transaction; stops at the first failed precondition. */
  const apply = (ops: readonly StateOp[]): CommitOutcome => {
    const at = now();
    const versions: Record<string, number> = {};
    const written: StateEntry[] = [];
    for (const op of ops) {
      checkStateKey(op.key);
      const row = select.get(namespace, op.key);
      const current = live(row, at);
      if (op.ifVersion !== undefined && (current?.version ?? 0) !== op.ifVersion) {
        // Throwing rolls back the earlier ops of this commit.
        throw new Conflict(op.key, current === undefined ? undefined : toEntry(current));
      }
      if (op.kind === 'put') {
        const version = (row?.version ?? 0) + 1;
        const value = JSON.stringify(op.value);
        if (value === undefined) throw new TypeError(`state value for '${op.key}' is not JSON`);
        const expiresAt = op.ttlMs === undefined ? null : at + op.ttlMs;
        upsert.run({ namespace, key: op.key, value, version, now: at, expiresAt });
        versions[op.key] = version;
        written.push({ key: op.key, value: JSON.parse(value), version, updatedAt: at, expiresAt });
      } else {
        remove.run(namespace, op.key);
      }
    }
    return { ok: true, versions, written };
  };
  const commitSync = db.transaction(apply);
  const commit = (ops: readonly StateOp[]): CommitOutcome | StateConflict => {
    try {
      return commitSync.immediate(ops);
    } catch (error) {
      if (error instanceof Conflict) return { ok: false, key: error.key, current: error.current };
      throw error;
    }
  };

  return {
    namespace,
    async get<TValue>(key: string) {
      checkStateKey(key);
      const row = live(select.get(namespace, key), now());
      return row === undefined ? undefined : toEntry<TValue>(row);
    },
    async list<TValue>(request: { prefix: string; limit: number; after?: string }) {
      const limit = Math.max(0, Math.floor(request.limit));
      return selectRange
        .all(namespace, request.prefix, `${request.prefix}\uffff`, request.after ?? '', now(), limit)
        .map((row) => toEntry<TValue>(row));
    },
    async put<TValue>(key: string, value: TValue, write: StateWriteOptions = {}) {
      const result = commit([{ kind: 'put', key, value, ...write }]);
      if (!result.ok) return result;
      return { ok: true as const, entry: result.written[0] as StateEntry<TValue> };
    },
    async delete(key: string, write: { ifVersion?: number } = {}) {
      const result = commit([{ kind: 'delete', key, ...write }]);
      return result.ok ? { ok: true as const } : result;
    },
    async commit(ops: readonly StateOp[]) {
      const result = commit(ops);
      return result.ok ? { ok: true as const, versions: result.versions } : result;
    },
  };
}

type CommitOutcome = { ok: true; versions: Record<string, number>; written: StateEntry[] };

class Conflict extends Error {
  constructor(
    readonly key: string,
    readonly current: StateEntry | undefined,
  ) {
    super(`state precondition failed for '${key}'`);
  }
}

/** Keys are 1..512 characters without NUL, on every backend. */
export function checkStateKey(key: string): void {
  if (key.length === 0 || key.length > maxKeyLength || key.includes('\0')) {
    throw new TypeError(`state key must be 1..${maxKeyLength} characters without NUL`);
  }
}
