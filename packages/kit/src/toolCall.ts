import type { Context, Span, Tracer } from '@opentelemetry/api';
import { ProtocolError, type CallToolResult, type InputRequiredResult } from '@modelcontextprotocol/server';
import * as z from 'zod';
import { CallAbort, type AbortListener } from './abort.js';
import type { AuditLog } from './audit/auditLog.js';
import { redact, type RedactOptions } from './audit/redact.js';
import { CallContext, type CallContextInit } from './callContext.js';
import { callFingerprint, canonicalJson, sha256Hex } from './canonical.js';
import type { CursorCodec } from './cursor.js';
import type { DeadlineTarget, DeadlineWatch } from './deadlines.js';
import type { AnyTool, Reconciled } from './defineTool.js';
import { fail, KeelError, ok, toolError, toToolError, type Outcome, type ToolError } from './errors.js';
import type { IdempotencyStore } from './idempotency/store.js';
import type { PathJail, ResolvedPath } from './jail.js';
import type { Logger } from './logger.js';
import type { CallOptions, IdempotencyOptions, ServerLimits } from './options.js';
import type { ProcessGroups } from './processGroups.js';
import { pendingInput, type AskContext, type RequestStateSealer } from './ask.js';
import { endToolSpan, otelApi, SpanAttributes, startToolSpan, withContext } from './telemetry.js';

/** The `_meta` key a caller (the supervisor) puts its idempotency key under. */
export const IDEMPOTENCY_META_KEY = 'keel/idempotency-key';
/** The `_meta` key of a failed result's structured error. */
export const ERROR_META_KEY = 'keel/error';
/** The `_meta` key describing what the idempotency store did with a call. */
export const IDEMPOTENCY_RESULT_META_KEY = 'keel/idempotency';

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
  /** Calls of this process waiting for a key another of its calls runs. */
  waiters: Map<string, Set<() => void>>;
  /** Calls running now, so close() can wait for them. */
  active: ActiveCalls;
  /** Keyed handlers that outlived their answer (a timeout), so close() can wait for them too. */
  inFlight: Set<Promise<unknown>>;
  /** The child process groups of this server's calls. */
  processes: ProcessGroups;
  sealer: RequestStateSealer;
  now: () => number;
}

/** The calls in flight: close() cancels them and waits until none is left. */
export interface ActiveCalls {
  enter(call: ToolCall): void;
  leave(call: ToolCall): void;
  /** Aborts every call in flight with `reason` (their children get SIGTERM through the signal). */
  abortAll(reason: KeelError): void;
  /** Resolves when no call is running. */
  idle(): Promise<void>;
}

export function createActiveCalls(): ActiveCalls {
  const calls = new Set<ToolCall>();
  let waiting: Array<() => void> = [];
  return {
    enter(call) {
      calls.add(call);
    },
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
    idle() {
      return calls.size === 0 ? Promise.resolve() : new Promise((resolve) => waiting.push(resolve));
    },
  };
}

type Rendered = { result: CallToolResult; bytes: number };

/**
 * One tool call through the pipeline: validate, jail, idempotency, run under a time limit and the
 * client's cancellation, bound, span and audit. Per-call state lives in fields and the steps are
 * methods: the closure-per-step version allocated ~7 KB a call, and on two cores the garbage
 * collector's threads took their time from the client.
 */
export class ToolCall implements CallContextInit, DeadlineTarget, AbortListener {
  readonly server: string;
  readonly spec: AnyTool['spec'];
  readonly abort = new CallAbort();
  readonly cursors: CursorCodec;
  readonly logger: Logger;
  readonly onProgress: CallOptions['onProgress'];
  readonly jail: PathJail;
  readonly processes: ProcessGroups;
  readonly asking: AskContext | undefined;
  readonly sealer: RequestStateSealer;
  readonly now: () => number;
  input: Record<string, unknown> = {};
  idempotencyKey: string | undefined;
  auditActor: string | undefined;
  resolved: Map<string, ResolvedPath | ResolvedPath[]> | undefined;

  readonly #shared: PipelineShared;
  readonly #tool: AnyTool;
  readonly #call: CallOptions;
  readonly #mutating: boolean;
  #span: Span | undefined;
  #context: Context | undefined;
  #idempotencyOutcome = 'none';
  #errorCode: string | undefined;
  #errorMessage: string | undefined;
  #rendered: Rendered | undefined;
  #resolveRace: ((outcome: Outcome<unknown>) => void) | undefined;
  #onCallerAbort: (() => void) | undefined;

  constructor(shared: PipelineShared, tool: AnyTool, call: CallOptions) {
    this.#shared = shared;
    this.#tool = tool;
    this.#call = call;
    this.server = shared.server;
    this.spec = tool.spec;
    this.cursors = shared.cursors;
    this.logger = shared.logger;
    this.onProgress = call.onProgress;
    this.jail = call.jail ?? shared.jail;
    this.processes = shared.processes;
    this.asking = call.asking;
    this.sealer = shared.sealer;
    this.now = shared.now;
    this.#mutating = tool.spec.effect !== 'read';
  }

  get meta(): Readonly<Record<string, unknown>> | undefined {
    return this.#call.meta;
  }

  /**
   * Runs the call. Kept small on purpose: an async function's suspended frame holds all its locals,
   * so the synchronous steps live in their own methods.
   */
  async run(rawArgs: unknown): Promise<CallToolResult | InputRequiredResult> {
    this.#startSpan();
    this.#shared.active.enter(this);
    try {
      const refused =
        this.#prepare(rawArgs) ??
        (this.spec.paths === undefined ? undefined : await this.#resolvePaths(this.spec.paths));
      if (refused !== undefined) return this.#fail(refused);
      this.#arm();
      try {
        return this.idempotencyKey === undefined
          ? await this.#runPlain()
          : await this.#runKeyed(this.idempotencyKey);
      } finally {
        this.#disarm();
      }
    } catch (error) {
      return this.#crashed(error);
    } finally {
      this.#shared.active.leave(this);
      if (this.#span !== undefined)
        endToolSpan(this.#span, { errorCode: this.#errorCode, message: this.#errorMessage });
    }
  }

  #startSpan(): void {
    // No tracer and no OpenTelemetry registered: no span at all, rather than a no-op one.
    const tracer = this.#shared.tracer ?? otelApi()?.trace.getTracer('@keel/kit');
    if (tracer === undefined) return;
    const { span, context } = startToolSpan({
      tracer,
      server: this.server,
      tool: this.spec.name,
      effect: this.spec.effect,
      requestId: this.#call.requestId ?? 'local',
      sessionId: this.#call.sessionId,
      meta: this.#call.meta,
    });
    this.#span = span;
    this.#context = context;
  }

  /**
   * Validates the arguments and settles the idempotency key. A schema violation is a tool error
   * (SEP-1303): the model sees the issues and can correct its call.
   */
  #prepare(rawArgs: unknown): ToolError | undefined {
    const parsed = this.#tool.inputSchema.safeParse(rawArgs);
    if (!parsed.success) return invalidArguments(this.spec.name, parsed.error);
    const data = parsed.data as Record<string, unknown> & { idempotencyKey?: string };
    if (!this.#mutating) {
      this.input = data;
      return undefined;
    }
    const { idempotencyKey: argKey, ...rest } = data;
    this.input = rest;
    const metaKey = this.#call.meta?.[IDEMPOTENCY_META_KEY];
    if (typeof metaKey === 'string' && argKey !== undefined && metaKey !== argKey) {
      return toolError(
        'INVALID_ARGUMENT',
        'two different idempotency keys were sent (in _meta and in the idempotencyKey argument)',
        { hint: 'Send the key once: the argument or _meta["keel/idempotency-key"].' },
      );
    }
    this.idempotencyKey = typeof metaKey === 'string' && metaKey.length > 0 ? metaKey : argKey;
    return undefined;
  }

  /** Starts the time limit and listens for the client's cancel. */
  #arm(): void {
    const signal = this.#call.signal;
    if (signal !== undefined) {
      this.#onCallerAbort = () =>
        this.abort.abort(new KeelError('CANCELLED', `${this.spec.name} was cancelled by the client`));
      signal.addEventListener('abort', this.#onCallerAbort, { once: true });
      if (signal.aborted) this.#onCallerAbort();
    }
    this.#shared.deadlines.add(this, Date.now() + this.#timeoutMs());
  }

  #disarm(): void {
    this.#shared.deadlines.remove(this);
    if (this.#onCallerAbort !== undefined)
      this.#call.signal?.removeEventListener('abort', this.#onCallerAbort);
  }

  async #runPlain(): Promise<CallToolResult | InputRequiredResult> {
    const outcome = await this.#race(this.#execute(new CallContext(this)));
    // A question for the person at the client: nothing happened yet, so nothing to render or audit.
    return pendingInput(outcome) ?? this.#finish(this.#render(outcome), outcome, false);
  }

  #crashed(error: unknown): CallToolResult {
    if (error instanceof ProtocolError) throw error;
    const failure = toToolError(error);
    this.#errorCode = failure.code;
    this.#errorMessage = failure.message;
    this.logger.error('tool pipeline failed', { tool: this.spec.name, error });
    return errorResult(failure);
  }

  /** The time limit passed: answer TIMEOUT (the handler's signal aborts too). */
  onDeadline(): void {
    this.abort.abort(
      new KeelError('TIMEOUT', `${this.spec.name} did not finish within ${this.#timeoutMs()} ms`, {
        hint: 'Narrow the request (fewer files, a smaller range) or raise the timeout.',
      }),
    );
  }

  /** Cancelled or timed out while the handler still runs: answer now. */
  onAbort(reason: KeelError): void {
    this.#resolveRace?.({ ok: false, error: toToolError(reason) });
  }

  #timeoutMs(): number {
    return this.spec.timeoutMs ?? this.#shared.limits.defaultTimeoutMs;
  }

  async #resolvePaths(paths: NonNullable<AnyTool['spec']['paths']>): Promise<ToolError | undefined> {
    this.resolved = new Map();
    for (const [field, mode] of Object.entries(paths)) {
      const value = this.input[field];
      if (value === undefined) continue;
      const values = Array.isArray(value) ? (value as unknown[]) : [value];
      const out: ResolvedPath[] = [];
      for (const item of values) {
        const result = await this.jail.resolve(String(item));
        if (!result.ok) return { ...result.error, details: { ...result.error.details, field } };
        if (mode === 'existing' && !result.value.exists) {
          return toolError('NOT_FOUND', `${field} '${String(item)}' does not exist`, {
            hint: 'Check the path; list the parent directory to see what is there.',
            details: { field, path: String(item) },
          });
        }
        out.push(result.value);
      }
      this.resolved.set(field, Array.isArray(value) ? out : out[0]!);
    }
    return undefined;
  }

  async #execute(ctx: CallContext): Promise<Outcome<unknown>> {
    try {
      // With tracing off and no caller trace the span context is invalid and there is nothing to
      // propagate; entering the context API then costs more than the rest of the pipeline.
      return await (this.#span !== undefined && otelApi(true)!.isSpanContextValid(this.#span.spanContext())
        ? withContext(this.#context!, () => this.spec.handler(this.input, ctx))
        : this.spec.handler(this.input, ctx));
    } catch (error) {
      if (!(error instanceof KeelError))
        this.logger.error('tool handler threw', { tool: this.spec.name, error });
      return { ok: false, error: toToolError(error) };
    } finally {
      if (ctx.pendingProgress !== undefined) await Promise.allSettled(ctx.pendingProgress);
    }
  }

  /**
   * Answers with whichever comes first: the handler, or the abort (cancel/timeout). A keyed handler
   * keeps its claim until it really settles, so a retry never runs beside a still-running first call.
   */
  #race(work: Promise<Outcome<unknown>>): Promise<Outcome<unknown>> {
    return new Promise((resolve) => {
      this.#resolveRace = resolve;
      this.abort.listen(this);
      void work.then(
        (outcome) => this.#settleRace(outcome),
        (error: unknown) => this.#settleRace({ ok: false, error: toToolError(error) }),
      );
    });
  }

  #settleRace(outcome: Outcome<unknown>): void {
    // Unlisten at once: a listener left on the abort state kept the whole call reachable.
    this.abort.unlisten(this);
    const resolve = this.#resolveRace;
    this.#resolveRace = undefined;
    resolve?.(outcome);
  }

  #render(outcome: Outcome<unknown>): CallToolResult {
    this.#rendered = renderResult(this.#tool, outcome, this.#shared.limits.maxResultBytes);
    return this.#rendered.result;
  }

  #fail(error: ToolError): CallToolResult {
    return this.#finish(errorResult(error), { ok: false, error }, false);
  }

  #finish(result: CallToolResult, outcome: Outcome<unknown>, replayed: boolean): CallToolResult {
    const span = this.#span;
    if (span?.isRecording() === true) {
      const bytes =
        this.#rendered?.result === result ? this.#rendered.bytes : Buffer.byteLength(JSON.stringify(result));
      span.setAttribute(SpanAttributes.resultBytes, bytes);
      span.setAttribute(SpanAttributes.idempotencyOutcome, this.#idempotencyOutcome);
      span.setAttribute(
        SpanAttributes.resultTruncated,
        outcome.ok &&
          typeof outcome.value === 'object' &&
          outcome.value !== null &&
          'truncated' in outcome.value,
      );
    }
    if (!outcome.ok) {
      this.#errorCode = outcome.error.code;
      this.#errorMessage = outcome.error.message;
    }
    if (this.#mutating) {
      try {
        this.#shared.audit.append({
          server: this.server,
          tool: this.spec.name,
          args: redact(this.input, this.#shared.redact),
          outcome: replayed ? 'replayed' : outcome.ok ? 'ok' : 'error',
          errorCode: outcome.ok ? undefined : outcome.error.code,
          idempotencyKey: this.idempotencyKey,
          resultSha256: sha256Hex(canonicalJson(result)),
          traceId: span?.spanContext().traceId,
          actor: this.auditActor,
        });
      } catch (error) {
        // The effect already happened; the caller gets its result and the failure is loud in the log.
        this.logger.error('audit append failed', { tool: this.spec.name, error });
        span?.setAttribute('keel.audit.failed', true);
      }
    }
    return result;
  }

  async #runKeyed(key: string): Promise<CallToolResult | InputRequiredResult> {
    const shared = this.#shared;
    const spec = this.spec;
    const fingerprint = callFingerprint(this.server, spec.name, this.input);
    const scope = this.server;
    const waitUntil = Date.now() + shared.idempotency.waitMs;
    for (let delay = 5; ; delay = Math.min(delay * 2, 200)) {
      const claim = shared.store.claim({
        scope,
        key,
        fingerprint,
        owner: shared.owner,
        leaseMs: shared.idempotency.leaseMs,
        ttlMs: shared.idempotency.ttlMs,
      });
      switch (claim.kind) {
        case 'completed': {
          this.#idempotencyOutcome = 'replayed';
          const stored = claim.result as CallToolResult;
          const replay: CallToolResult = {
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
          const outcome: Outcome<unknown> = stored.isError
            ? {
                ok: false,
                error:
                  (stored._meta?.[ERROR_META_KEY] as ToolError | undefined) ??
                  toolError('INTERNAL', 'stored error'),
              }
            : ok(stored.structuredContent);
          return this.#finish(replay, outcome, true);
        }
        case 'conflict':
          this.#idempotencyOutcome = 'conflict';
          return this.#fail(
            toolError(
              'IDEMPOTENCY_KEY_REUSED',
              `idempotency key '${key}' was already used for ${spec.name} with different arguments`,
              { hint: 'Use a new key for a different call; reuse a key only to retry the exact same call.' },
            ),
          );
        case 'in_progress':
          if (Date.now() >= waitUntil || this.abort.reason !== undefined) {
            this.#idempotencyOutcome = 'in_progress';
            return this.#fail(
              toolError('IN_PROGRESS', `a call with idempotency key '${key}' is still running`, {
                hint: 'Retry the same call shortly to get its result.',
                details: { owner: claim.owner, leaseExpiresAt: new Date(claim.leaseExpiresAt).toISOString() },
              }),
            );
          }
          await waitFor(
            key,
            Math.min(delay, Math.max(1, waitUntil - Date.now())),
            shared.waiters,
            this.abort,
          );
          continue;
        case 'claimed':
        case 'recovered': {
          const token = claim.token;
          const heartbeat = setInterval(
            () => {
              try {
                if (!shared.store.renew(scope, key, token, shared.idempotency.leaseMs)) {
                  this.logger.warn('idempotency lease lost', { tool: spec.name, key });
                }
              } catch (error) {
                this.logger.error('idempotency lease renewal failed', { tool: spec.name, key, error });
              }
            },
            Math.max(50, Math.floor(shared.idempotency.leaseMs / 3)),
          );
          heartbeat.unref();
          const ctx = new CallContext(this);
          let work: Promise<Outcome<unknown>>;
          if (claim.kind === 'recovered') {
            this.#idempotencyOutcome = 'recovered';
            this.logger.warn('recovering an interrupted call', {
              tool: spec.name,
              key,
              previousOwner: claim.previousOwner,
            });
            work = this.#recover(ctx);
          } else {
            this.#idempotencyOutcome = 'executed';
            work = this.#execute(ctx);
          }
          // The store follows the handler's real settlement, not the answer the caller got.
          const settled = work.then((outcome) => {
            clearInterval(heartbeat);
            try {
              if (!outcome.ok && outcome.error.retryable) shared.store.release(scope, key, token);
              else
                shared.store.complete(
                  scope,
                  key,
                  token,
                  renderResult(this.#tool, outcome, shared.limits.maxResultBytes).result,
                );
            } catch (error) {
              this.logger.error('idempotency store write failed', { tool: spec.name, key, error });
            }
            wake(shared.waiters, key);
            return outcome;
          });
          shared.inFlight.add(settled);
          void settled.finally(() => shared.inFlight.delete(settled));
          // A pending question's outcome is retryable, so the store released the key above.
          const outcome = await this.#race(settled);
          return pendingInput(outcome) ?? this.#finish(this.#render(outcome), outcome, false);
        }
        default:
          return assertNever(claim);
      }
    }
  }

  async #recover(ctx: CallContext): Promise<Outcome<unknown>> {
    const spec = this.spec;
    if (spec.reconcile === undefined) {
      if (spec.idempotent === true) return await this.#execute(ctx);
      return fail(
        'CONFLICT',
        `an earlier ${spec.name} call with this idempotency key was interrupted and its outcome cannot be determined`,
        {
          hint: 'Inspect the current state, then retry with a new idempotency key if the change is still needed.',
        },
      );
    }
    let reconciled: Reconciled<unknown>;
    try {
      reconciled = await spec.reconcile(this.input, ctx);
    } catch (error) {
      return { ok: false, error: toToolError(error) };
    }
    switch (reconciled.status) {
      case 'done':
        return ok(reconciled.value);
      case 'failed':
        return { ok: false, error: reconciled.error };
      case 'not_done':
        return await this.#execute(ctx);
      default:
        return assertNever(reconciled);
    }
  }
}

function waitFor(
  key: string,
  ms: number,
  waiters: Map<string, Set<() => void>>,
  abort: CallAbort,
): Promise<void> {
  return new Promise((resolve) => {
    let set = waiters.get(key);
    if (set === undefined) waiters.set(key, (set = new Set()));
    const listener: AbortListener = { onAbort: () => done() };
    const done = () => {
      clearTimeout(timer);
      set.delete(done);
      abort.unlisten(listener);
      resolve();
    };
    const timer = setTimeout(done, ms);
    set.add(done);
    abort.listen(listener);
  });
}

function wake(waiters: Map<string, Set<() => void>>, key: string): void {
  const set = waiters.get(key);
  waiters.delete(key);
  for (const resolve of set ?? []) resolve();
}

/** The tool error for arguments that fail the input schema: every issue, by path, and a hint. */
function invalidArguments(tool: string, error: z.ZodError): ToolError {
  const issues = error.issues.map((issue) => ({ path: issue.path.map(String), message: issue.message }));
  const fields = [...new Set(issues.map((issue) => issue.path.join('.') || '(arguments)'))];
  return toolError('INVALID_ARGUMENT', `invalid arguments for ${tool}: ${z.prettifyError(error)}`, {
    hint: `Fix ${fields.join(', ')} to match the tool's input schema (tools/list shows it) and call again.`,
    details: { issues },
  });
}

/** A failed call as MCP carries it: isError, a readable text, and the structured error in `_meta`. */
export function errorResult(error: ToolError): CallToolResult {
  const lines = [`Error [${error.code}]: ${error.message}`];
  if (error.hint !== undefined) lines.push(`Hint: ${error.hint}`);
  lines.push(`Retryable: ${error.retryable ? 'yes' : 'no'}`);
  if (error.details !== undefined) {
    const details = JSON.stringify(error.details);
    lines.push(`Details: ${details.length > 2000 ? `${details.slice(0, 2000)}…` : details}`);
  }
  // The error is not put in structuredContent: clients validate that against the tool's output schema.
  return {
    isError: true,
    content: [{ type: 'text', text: lines.join('\n') }],
    _meta: { [ERROR_META_KEY]: error },
  };
}

function renderResult(tool: AnyTool, outcome: Outcome<unknown>, maxResultBytes: number): Rendered {
  const failed = (error: ToolError): Rendered => {
    const result = errorResult(error);
    return { result, bytes: Buffer.byteLength(JSON.stringify(result)) };
  };
  if (!outcome.ok) return failed(outcome.error);
  const checked = tool.spec.output.safeParse(outcome.value);
  if (!checked.success) {
    return failed(
      toolError(
        'INTERNAL',
        `${tool.spec.name} produced a result that does not match its output schema: ${z.prettifyError(checked.error)}`,
        { hint: 'This is a bug in the tool; report it with the arguments used.' },
      ),
    );
  }
  const value = checked.data as Record<string, unknown>;
  const text = tool.spec.render === undefined ? JSON.stringify(value) : tool.spec.render(value);
  const result: CallToolResult = { content: [{ type: 'text', text }], structuredContent: value };
  const bytes = Buffer.byteLength(JSON.stringify(result));
  if (bytes > maxResultBytes) {
    return failed(
      toolError(
        'RESOURCE_LIMIT',
        `${tool.spec.name} produced ${bytes} bytes, over the server's hard cap of ${maxResultBytes}`,
        { hint: 'Ask for less: a smaller budget argument, a narrower path or range.' },
      ),
    );
  }
  return { result, bytes };
}

function assertNever(value: never): never {
  throw new KeelError('INTERNAL', `unexpected value ${JSON.stringify(value)}`);
}
