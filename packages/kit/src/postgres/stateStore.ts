import type pg from 'pg';
import {
  checkStateKey,
  type StateConflict,
  type StateEntry,
  type StateOp,
  type StateStore,
  type StateWriteOptions,
} from '../state/stateStore.js';
import { lockKey, transaction } from './database.js';

interface Row {
  key: string;
  value: string;
  version: string;
  updated_at: string;
  expires_at: string | null;
}

type Applied = { ok: true; versions: Record<string, number>; written: StateEntry[] };

/**
 * A server's namespaced state on PostgreSQL: the same contract as the SQLite store
 * (`stateStoreConformance`). A commit locks its keys (in key order, so two commits never deadlock)
 * before it reads them, so a precondition is checked and applied without a gap across replicas.
 */
export function createPostgresStateStore(
  pool: pg.Pool,
  namespace: string,
  options: { now?: () => number } = {},
): StateStore {
  if (namespace.length === 0) throw new TypeError('a state namespace must not be empty');
  const now = options.now ?? Date.now;
  const select = 'SELECT key, value, version, updated_at, expires_at FROM keel_server_state';

  const apply = (ops: readonly StateOp[]): Promise<Applied | StateConflict> =>
    transaction(pool, async (client) => {
      for (const op of ops) checkStateKey(op.key);
      for (const key of [...new Set(ops.map((op) => op.key))].sort())
        await lockKey(client, 'state', namespace, key);
      const at = now();
      const versions: Record<string, number> = {};
      const written: StateEntry[] = [];
      for (const op of ops) {
        const found = await client.query<Row>(`${select} WHERE namespace = $1 AND key = $2`, [
          namespace,
          op.key,
        ]);
        const row = found.rows[0];
        const current = live(row, at);
        if (
          op.ifVersion !== undefined &&
          (current === undefined ? 0 : Number(current.version)) !== op.ifVersion
        )
          throw new Conflict(op.key, current === undefined ? undefined : toEntry(current));
        if (op.kind === 'put') {
          const version = (row === undefined ? 0 : Number(row.version)) + 1;
          const value = JSON.stringify(op.value);
          if (value === undefined) throw new TypeError(`state value for '${op.key}' is not JSON`);
          const expiresAt = op.ttlMs === undefined ? null : at + op.ttlMs;
          await client.query(
            `INSERT INTO keel_server_state (namespace, key, value, version, updated_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (namespace, key) DO UPDATE SET value = excluded.value, version = excluded.version,
               updated_at = excluded.updated_at, expires_at = excluded.expires_at`,
            [namespace, op.key, value, version, at, expiresAt],
          );
          versions[op.key] = version;
          written.push({ key: op.key, value: JSON.parse(value), version, updatedAt: at, expiresAt });
        } else {
          await client.query('DELETE FROM keel_server_state WHERE namespace = $1 AND key = $2', [
            namespace,
            op.key,
          ]);
        }
      }
      return { ok: true as const, versions, written };
    }).catch((error: unknown) => {
      if (error instanceof Conflict) return { ok: false as const, key: error.key, current: error.current };
      throw error;
    });

  return {
    namespace,
    async get<TValue>(key: string) {
      checkStateKey(key);
      const found = await pool.query<Row>(`${select} WHERE namespace = $1 AND key = $2`, [namespace, key]);
      const row = live(found.rows[0], now());
      return row === undefined ? undefined : toEntry<TValue>(row);
    },
    async list<TValue>(request: { prefix: string; limit: number; after?: string }) {
      const limit = Math.max(0, Math.floor(request.limit));
      const found = await pool.query<Row>(
        `${select} WHERE namespace = $1 AND key >= $2 AND key < $3 AND key > $4
           AND (expires_at IS NULL OR expires_at > $5) ORDER BY key LIMIT $6`,
        [namespace, request.prefix, `${request.prefix}\uffff`, request.after ?? '', now(), limit],
      );
      return found.rows.map((row) => toEntry<TValue>(row));
    },
    async put<TValue>(key: string, value: TValue, write: StateWriteOptions = {}) {
      const result = await apply([{ kind: 'put', key, value, ...write }]);
      if (!result.ok) return result;
      return { ok: true as const, entry: result.written[0] as StateEntry<TValue> };
    },
    async delete(key: string, write: { ifVersion?: number } = {}) {
      const result = await apply([{ kind: 'delete', key, ...write }]);
      return result.ok ? { ok: true as const } : result;
    },
    async commit(ops: readonly StateOp[]) {
      const result = await apply(ops);
      return result.ok ? { ok: true as const, versions: result.versions } : result;
    },
  };
}

function live(row: Row | undefined, at: number): Row | undefined {
  return row !== undefined && (row.expires_at === null || Number(row.expires_at) > at) ? row : undefined;
}

function toEntry<TValue>(row: Row): StateEntry<TValue> {
  return {
    key: row.key,
    value: JSON.parse(row.value) as TValue,
    version: Number(row.version),
    updatedAt: Number(row.updated_at),
    expiresAt: row.expires_at === null ? null : Number(row.expires_at),
  };
}

class Conflict extends Error {
  constructor(
    readonly key: string,
    readonly current: StateEntry | undefined,
  ) {
    super(`state precondition failed for '${key}'`);
  }
}
