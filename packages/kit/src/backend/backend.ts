import type { AuditLog } from '../audit/auditLog.js';
import type { IdempotencyStore } from '../idempotency/store.js';
import type { StateStore } from '../state/stateStore.js';

/**
 * Where a server keeps what must outlive a call — the idempotency store, the audit log, its own
 * namespaced state and the secret that signs cursors and seals request state. SQLite in the state
 * directory by default; PostgreSQL when `--store` (or `KEEL_DATABASE_URL`) names one, so replicas
 * behind a balancer share all four. Chosen by a URL, never by a code change in a tool.
 */
export interface StoreBackend {
  readonly kind: 'sqlite' | 'postgres';
  /** Where it lives, safe to log (a URL without its password, or the state directory). */
  readonly location: string;
  /** Signs cursors and seals request state: the same for every process on this backend. */
  readonly secret: Uint8Array;
  readonly idempotency: IdempotencyStore;
  readonly audit: AuditLog;
  /** The server's own durable state under `namespace` (plans, runs, locks, nonces). */
  state(namespace: string): StateStore;
  close(): Promise<void>;
}

/** A database URL with its password replaced, for logs and errors. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(an unparseable URL)';
  }
}

/** True for the URLs the PostgreSQL backend accepts. */
export function isPostgresUrl(value: string | undefined): boolean {
  return value !== undefined && /^postgres(?:ql)?:\/\//i.test(value);
}
