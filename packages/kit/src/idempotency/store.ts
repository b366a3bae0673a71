import type { AuditEntry } from '../audit/auditLog.js';
/**
 * The idempotency store: one record per (scope, key). A record is claimed before the effect runs,
 * held under a lease the running process renews, and completed with the stored result. SQLite is the
 * embedded default; the interface is what a shared backend for several replicas implements, which
 * is why every method returns a Promise although SQLite answers synchronously. Any backend must pass
 * `idempotencyStoreConformance` (`@keel/kit/conformance`) unchanged.
 */
export interface IdempotencyStore {
  /** Claims `key` for a run, or says why the caller must not run. Atomic across processes. */
  claim(request: ClaimRequest): Promise<ClaimResult>;
  /** Extends the lease of a claim this owner holds; false when the claim was lost. */
  renew(scope: string, key: string, token: string, leaseMs: number): Promise<boolean>;
  /**
   * Stores the result of a claimed run; later claims of the key get it back. With `audit`, a store
   * whose `auditsCompletions` is true appends that row in the same transaction, so a crash leaves
   * either both or neither; false when the claim was no longer this token's (nothing written).
   */
  complete(scope: string, key: string, token: string, result: unknown, audit?: AuditEntry): Promise<boolean>;
  /** True when `complete` appends its `audit` row atomically with the result; otherwise the caller appends it. */
  readonly auditsCompletions?: boolean;
  /**
   * A random name the store's records carry: the same for every process that shares them, a new one
   * when they are lost (a new file, a new database). A tool whose effect also carries its key
   * elsewhere (git_commit's trailer) can tell from it that no other store made one (`ctx.keyClaim`).
   * A store without one is never vouched for.
   */
  readonly identity?: string;
  /** Drops a claim whose run ended without a result worth keeping, so a retry runs again. */
  release(scope: string, key: string, token: string): Promise<void>;
  /** Reads a record without claiming it. */
  get(scope: string, key: string): Promise<IdempotencyRecord | undefined>;
  /** Deletes records whose TTL has passed; returns how many. */
  reap(now?: number): Promise<number>;
  close(): Promise<void>;
}

export interface ClaimRequest {
  scope: string;
  key: string;
  fingerprint: string;
  /** Who runs it (process id + random), shown to a waiting duplicate. */
  owner: string;
  leaseMs: number;
  ttlMs: number;
  now?: number;
  /**
   * An owner the caller has found to be gone (its process no longer exists): a claim it still holds
   * is recovered now, before its lease runs out. A claim of any other owner is untouched.
   */
  takeOverFrom?: string;
}

export type ClaimResult =
  /** Nobody ran this key: run the effect, then complete or release with `token`. */
  | { kind: 'claimed'; token: string }
  /**
   * Someone claimed it and their lease ran out (the process died mid-run): the effect may or may
   * not have happened. The caller now holds the claim and must reconcile before running anything.
   */
  | { kind: 'recovered'; token: string; previousOwner: string; attempts: number }
  | { kind: 'completed'; result: unknown; completedAt: number }
  | { kind: 'in_progress'; owner: string; leaseExpiresAt: number }
  | { kind: 'conflict'; storedFingerprint: string };

export interface IdempotencyRecord {
  scope: string;
  key: string;
  fingerprint: string;
  state: 'in_progress' | 'completed';
  owner: string | null;
  leaseExpiresAt: number | null;
  createdAt: number;
  completedAt: number | null;
  expiresAt: number;
  attempts: number;
  result: unknown;
}
