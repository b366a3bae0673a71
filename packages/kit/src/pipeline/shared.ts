import type { Tracer } from '@opentelemetry/api';
import type { CallAbort } from '../abort.js';
import type { RequestStateSealer } from '../ask.js';
import type { AuditLog } from '../audit/auditLog.js';
import type { RedactOptions } from '../audit/redact.js';
import type { KitCrashPoint } from '../crashPoint.js';
import type { CursorCodec } from '../cursor.js';
import type { DeadlineWatch } from '../deadlines.js';
import type { KeelError } from '../errors.js';
import type { IdempotencyStore } from '../idempotency/store.js';
import type { PathJail } from '../jail.js';
import type { Logger } from '../logger.js';
import type { IdempotencyOptions, ServerLimits } from '../options.js';
import type { PrepareStep } from '../prepare.js';
import type { ProcessGroups } from '../processGroups.js';
import type { Waiters } from './idempotency.js';

/** What close() needs of a call in flight: its abort. */
export interface AbortableCall {
  readonly abort: CallAbort;
}

/** What every call of one server shares. */
export interface PipelineShared {
  server: string;
  limits: ServerLimits;
  idempotency: IdempotencyOptions;
  logger: Logger;
  /** An explicit tracer; without one, spans go to the host's registered provider, if any. */
  tracer: Tracer | undefined;
  store: IdempotencyStore;
  audit: AuditLog;
  cursors: CursorCodec;
  redact: RedactOptions | undefined;
  /** This process, as the owner of idempotency claims. */
  owner: string;
  jail: PathJail;
  deadlines: DeadlineWatch;
  waiters: Waiters;
  /** Calls running now, so close() can cancel them and wait. */
  active: ActiveCalls;
  /** Keyed handlers that outlived their answer (a timeout), so close() can wait for them too. */
  inFlight: Set<Promise<unknown>>;
  /** The child process groups of this server's calls. */
  processes: ProcessGroups;
  sealer: RequestStateSealer;
  now: () => number;
  prepare: PrepareStep | undefined;
  /** A chaos run's crash point; a no-op otherwise. */
  crashPoint: KitCrashPoint;
}

/** The calls in flight: close() cancels them and waits until none is left. */
export interface ActiveCalls {
  enter(call: AbortableCall): void;
  leave(call: AbortableCall): void;
  /** Aborts every call in flight with `reason` (their children get SIGTERM through the signal). */
  abortAll(reason: KeelError): void;
  /** Resolves when no call is running. */
  idle(): Promise<void>;
}

export function createActiveCalls(): ActiveCalls {
  const calls = new Set<AbortableCall>();
  let waiting: Array<() => void> = [];
  return {
    enter: (call) => void calls.add(call),
    leave(call) {
      calls.delete(call);
      if (calls.size === 0 && waiting.length > 0) {
        const resolves = waiting;
        waiting = [];
        for (const resolve of resolves) resolve();
      }
    },
    abortAll(reason) {
      for (const call of calls) call.abort.abort(reason);
    },
    idle: () => (calls.size === 0 ? Promise.resolve() : new Promise((resolve) => waiting.push(resolve))),
  };
}
