import type { CallToolResult } from '@modelcontextprotocol/server';
import type { AuditEntry } from '../audit/auditLog.js';
import type { AbortListener, CallAbort } from '../abort.js';
import { toolError, type Outcome, type ToolError } from '../errors.js';
import type { KitCrashPoint } from '../crashPoint.js';
import type { ClaimResult, IdempotencyStore } from '../idempotency/store.js';
import type { Logger } from '../logger.js';
import type { IdempotencyOptions } from '../options.js';
import type { KeyClaim } from '../defineTool.js';
import { ownerIsGone } from '../idempotency/owner.js';
import { IDEMPOTENCY_RESULT_META_KEY, outcomeOfStored, type Rendered } from './render.js';

/** Calls of this process waiting for a key another of its calls runs. */
export type Waiters = Map<string, Set<() => void>>;

/** What the handler's run settled with: its outcome and, unless it asked a question, its rendering. */
export interface Settled {
  outcome: Outcome<unknown>;
  rendered: Rendered | undefined;
  /** Refused before it changed anything (a preview binding that moved): the key is freed, not kept. */
  unchanged?: boolean;
}

export interface KeyedCall {
  store: IdempotencyStore;
  options: IdempotencyOptions;
  scope: string;
  key: string;
  fingerprint: string;
  owner: string;
  tool: string;
  logger: Logger;
  waiters: Waiters;
  abort: CallAbort;
  /** Keyed runs that outlive their answer (a timeout), so close() can wait for them. */
  inFlight: Set<Promise<unknown>>;
  /** A chaos run's crash point (after the claim, after the handler settled); a no-op otherwise. */
  crashPoint: KitCrashPoint;
  /** Starts the handler, or the recovery of an interrupted run, and renders what it settles with. */
  start(kind: 'executed' | 'recovered'): Promise<Settled>;
  /** The handler's settlement, or the abort (cancel/timeout) if that comes first. */
  race(work: Promise<Settled>): Promise<Settled>;
  /** The audit row of what a completed run did; undefined when the tool only reads. */
  settlementAudit(done: Settled & { rendered: Rendered }): AuditEntry | undefined;
  /** Appends a row the store could not write with the completion. */
  appendAudit(entry: AuditEntry): Promise<void>;
}

export type KeyedAnswer =
  | { kind: 'replayed'; result: CallToolResult; outcome: Outcome<unknown> }
  | { kind: 'refused'; idempotency: 'conflict' | 'in_progress'; error: ToolError }
  | {
      kind: 'ran';
      idempotency: 'executed' | 'recovered';
      settled: Settled;
      /** The answer is the run's settlement and its audit row is written (with the completion). */
      audited: boolean;
    };

/**
 * Idempotency: claim the key, then replay a stored result, refuse a conflicting or still-running
 * duplicate (after waiting up to `waitMs`), or run (or recover) under a renewed lease. The store
 * follows the handler's real settlement, not the answer the caller got, so a retry never runs beside
 * a first attempt that is still going.
 */
export async function runKeyed(call: KeyedCall): Promise<KeyedAnswer> {
  const waitUntil = Date.now() + call.options.waitMs;
  let gone: string | undefined;
  for (let delay = 5; ; delay = Math.min(delay * 2, 200)) {
    const claim = await call.store.claim({
      scope: call.scope,
      key: call.key,
      fingerprint: call.fingerprint,
      owner: call.owner,
      leaseMs: call.options.leaseMs,
      ttlMs: call.options.ttlMs,
      ...(gone === undefined ? {} : { takeOverFrom: gone }),
    });
    switch (claim.kind) {
      case 'completed':
        return replayOf(claim, call.key);
      case 'conflict':
        return {
          kind: 'refused',
          idempotency: 'conflict',
          error: toolError(
            'IDEMPOTENCY_KEY_REUSED',
            `idempotency key '${call.key}' was already used for ${call.tool} with different arguments`,
            { hint: 'Use a new key for a different call; reuse a key only to retry the exact same call.' },
          ),
        };
      case 'in_progress':
        // A holder whose process is gone (a crash on this machine) cannot renew: recover now rather
        // than wait out its lease.
        if (claim.owner !== gone && ownerIsGone(claim.owner)) {
          gone = claim.owner;
          continue;
        }
        if (Date.now() >= waitUntil || call.abort.reason !== undefined) {
          return {
            kind: 'refused',
            idempotency: 'in_progress',
            error: toolError('IN_PROGRESS', `a call with idempotency key '${call.key}' is still running`, {
              hint: 'Retry the same call shortly to get its result.',
              details: { owner: claim.owner, leaseExpiresAt: new Date(claim.leaseExpiresAt).toISOString() },
            }),
          };
        }
        await waitFor(call, Math.min(delay, Math.max(1, waitUntil - Date.now())));
        continue;
      case 'claimed':
      case 'recovered':
        return await runClaimed(call, claim);
      default:
        throw new TypeError(`unexpected claim ${JSON.stringify(claim satisfies never)}`);
    }
  }
}

function replayOf(claim: Extract<ClaimResult, { kind: 'completed' }>, key: string): KeyedAnswer {
  const stored = claim.result as CallToolResult;
  const result: CallToolResult = {
    ...stored,
    _meta: {
      ...stored._meta,
      [IDEMPOTENCY_RESULT_META_KEY]: {
        key,
        replayed: true,
        completedAt: new Date(claim.completedAt).toISOString(),
      },
    },
  };
  return { kind: 'replayed', result, outcome: outcomeOfStored(stored) };
}

async function runClaimed(
  call: KeyedCall,
  claim: Extract<ClaimResult, { kind: 'claimed' | 'recovered' }>,
): Promise<KeyedAnswer> {
  const { store, scope, key, logger } = call;
  const token = claim.token;
  const heartbeat = setInterval(
    () => {
      store.renew(scope, key, token, call.options.leaseMs).then(
        (held) => {
          if (!held) logger.warn('idempotency lease lost', { tool: call.tool, key });
        },
        (error: unknown) => logger.error('idempotency lease renewal failed', { tool: call.tool, key, error }),
      );
    },
    Math.max(50, Math.floor(call.options.leaseMs / 3)),
  );
  heartbeat.unref();
  const kind = claim.kind === 'recovered' ? 'recovered' : 'executed';
  if (claim.kind === 'recovered')
    logger.warn('recovering an interrupted call', {
      tool: call.tool,
      key,
      previousOwner: claim.previousOwner,
    });
  let audited: Settled | undefined;
  call.crashPoint('kit.after-claim', key);
  const settled = call.start(kind).then(async (done) => {
    clearInterval(heartbeat);
    call.crashPoint('kit.after-effect', key);
    try {
      // A retryable failure (a pending question among them) frees the key; anything else is kept,
      // and its audit row records what the run did, whatever the caller was answered meanwhile.
      const rendered = done.rendered;
      if (
        rendered === undefined ||
        done.unchanged === true ||
        (!done.outcome.ok && done.outcome.error.retryable)
      )
        await store.release(scope, key, token);
      else {
        const entry = call.settlementAudit({ ...done, rendered });
        const completed = await store.complete(scope, key, token, rendered.result, entry);
        if (entry !== undefined && !(completed && store.auditsCompletions === true))
          await call.appendAudit(entry);
        audited = done;
      }
    } catch (error) {
      logger.error('idempotency store write failed', { tool: call.tool, key, error });
    }
    wake(call.waiters, key);
    return done;
  });
  call.inFlight.add(settled);
  void settled.finally(() => call.inFlight.delete(settled));
  const answer = await call.race(settled);
  return { kind: 'ran', idempotency: kind, settled: answer, audited: answer === audited };
}

/** Waits for the key's holder in this process to finish, a short delay, or this call's abort. */
function waitFor(call: KeyedCall, ms: number): Promise<void> {
  return new Promise((resolve) => {
    let set = call.waiters.get(call.key);
    if (set === undefined) call.waiters.set(call.key, (set = new Set()));
    const listener: AbortListener = { onAbort: () => done() };
    const done = () => {
      clearTimeout(timer);
      set.delete(done);
      call.abort.unlisten(listener);
      resolve();
    };
    const timer = setTimeout(done, ms);
    set.add(done);
    call.abort.listen(listener);
  });
}

function wake(waiters: Waiters, key: string): void {
  const set = waiters.get(key);
  waiters.delete(key);
  for (const resolve of set ?? []) resolve();
}

/** What a run tells its handler of its key: whether its claim is new, from a store with a name. */
export function keyClaimOf(
  store: IdempotencyStore,
  options: IdempotencyOptions,
  key: string | undefined,
  kind: 'executed' | 'recovered',
): KeyClaim | undefined {
  const identity = key === undefined ? undefined : store.identity;
  return identity === undefined
    ? undefined
    : { store: identity, ttlMs: options.ttlMs, fresh: kind === 'executed' };
}
