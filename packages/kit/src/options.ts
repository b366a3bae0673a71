import type { Tracer } from '@opentelemetry/api';
import type { AuditLog } from './audit/auditLog.js';
import type { RedactOptions } from './audit/redact.js';
import type { AnyTool } from './defineTool.js';
import type { PrepareStep } from './prepare.js';
import type { IdempotencyStore } from './idempotency/store.js';
import type { PathJail } from './jail.js';
import type { Logger } from './logger.js';
import type { ProcessGroups } from './processGroups.js';
import type { AskContext } from './ask.js';
import type { KitCrashPoint } from './crashPoint.js';

export interface ServerLimits {
  /** Per-call time limit unless a tool sets its own. */
  defaultTimeoutMs: number;
  /** The last guard on a result's size; a tool's own budgets should keep far below it. */
  maxResultBytes: number;
  /** The most files a preview lists; past it the preview says `complete: false`. */
  previewMaxFiles: number;
}

export interface IdempotencyOptions {
  /** How long a claim stays valid without a heartbeat; a dead process's claim is recovered after it. */
  leaseMs: number;
  /** How long a completed result is kept for retries. */
  ttlMs: number;
  /** How long a concurrent duplicate waits for the first call before IN_PROGRESS. */
  waitMs: number;
}

export interface CreateServerOptions {
  name: string;
  version: string;
  title?: string;
  instructions?: string;
  tools: readonly AnyTool[];
  jail: PathJail;
  /** Defaults to an in-memory SQLite store: idempotent within the process only. */
  store?: IdempotencyStore;
  /** Defaults to an in-memory log. */
  audit?: AuditLog;
  /** Signs cursors; pass the state dir's secret so cursors survive restarts and replicas. */
  cursorSecret?: Uint8Array;
  tracer?: Tracer;
  logger?: Logger;
  limits?: Partial<ServerLimits>;
  idempotency?: Partial<IdempotencyOptions>;
  redact?: RedactOptions;
  /**
   * Where the child process groups of this server's calls are registered. A bin passes its own so
   * it can kill them as it exits; by default the server keeps one and kills them on `close()`.
   */
  processes?: ProcessGroups;
  /**
   * A step the kit runs for every tool of the server, after the jail resolved the call's declared
   * paths and before the handler (or its reconcile): the place for policy no tool may forget (a
   * deny list, opening a repository). A failure answers the call; a value is handed to the handler
   * as `ctx.prepared` (see `defineToolWith` and `toolSet`, which check the two agree).
   */
  prepare?: PrepareStep;
  /** The clock for deadlines a tool seals (questions' expiry); tests pass their own. */
  now?: () => number;
  /** A chaos run's crash point (`kitCrashPointFrom`; bins take it from KEEL_CRASH_AT): none by default. */
  crashPoint?: KitCrashPoint;
}

export type { PreparedCall, PrepareStep } from './prepare.js';

export interface CallOptions {
  meta?: Record<string, unknown>;
  signal?: AbortSignal;
  requestId?: string | number;
  sessionId?: string;
  /** The jail for this call when narrower than the server's (client roots). */
  jail?: PathJail;
  /** Delivers a progress notification; the call's result waits for these so none arrives after it. */
  onProgress?: (progress: { progress: number; total?: number; message?: string }) => Promise<void> | void;
  /** Whether the client can show a form (elicitation), and what a retried call carried back. */
  asking?: AskContext;
}
