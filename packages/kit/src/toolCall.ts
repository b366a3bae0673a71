import { ProtocolError, type CallToolResult, type InputRequiredResult } from '@modelcontextprotocol/server';
import { CallAbort, type AbortListener } from './abort.js';
import { pendingInput, type AskContext, type RequestStateSealer } from './ask.js';
import type { AuditEntry } from './audit/auditLog.js';
import { CallContext, type CallContextInit } from './callContext.js';
import { callFingerprint } from './canonical.js';
import type { CursorCodec } from './cursor.js';
import type { DeadlineTarget } from './deadlines.js';
import type { AnyTool } from './defineTool.js';
import { KeelError, toToolError } from './errors.js';
import { SpanAttributes } from './telemetry.js';
import type { PathJail } from './jail.js';
import type { Logger } from './logger.js';
import type { CallOptions } from './options.js';
import { refusedAnswer, type Answer } from './pipeline/answer.js';
import { appendAudit, auditEntryOf } from './pipeline/audit.js';
import { executeHandler, recoverInterrupted } from './pipeline/execute.js';
import { keyClaimOf, runKeyed, type Settled } from './pipeline/idempotency.js';
import { resolveDeclaredPaths, type ResolvedPaths } from './pipeline/paths.js';
import { prepareCall } from './pipeline/prepare.js';
import { measure, renderOutcome } from './pipeline/render.js';
export { createActiveCalls, type ActiveCalls, type PipelineShared } from './pipeline/shared.js';
import { applyPlanned, previewRequest, previewRun } from './pipeline/preview.js';
import type { PipelineShared } from './pipeline/shared.js';
import { PREVIEW_META_KEY } from './preview.js';
import { endCallSpan, startCallSpan, type CallTrace } from './pipeline/span.js';
import { validateArguments } from './pipeline/validate.js';
import type { ProcessGroups } from './processGroups.js';

export {
  ERROR_META_KEY,
  errorResult,
  IDEMPOTENCY_META_KEY,
  IDEMPOTENCY_RESULT_META_KEY,
} from './pipeline/render.js';

/**
 * One tool call: the per-call state (what its handler's context reads) and `run`, which composes the
 * pipeline's steps — validate, jail, idempotency, run, bound/render, audit — inside its span. One
 * object per call carries the state, the deadline and the abort listener: a closure per step cost
 * ~7 KB a call, which on two cores the garbage collector took from the client.
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
  readonly owner: string;
  readonly asking: AskContext | undefined;
  readonly sealer: RequestStateSealer;
  readonly now: () => number;
  input: Record<string, unknown> = {};
  idempotencyKey: string | undefined;
  auditActor: string | undefined;
  resolved: ResolvedPaths | undefined;
  prepared: unknown = undefined;
  /** The preview binding the call must still have (`_meta["keel/expect-preview"]`). */
  expectedBinding: string | undefined;
  /** The binding check refused the call before it changed anything: its key is freed. */
  refusedUnchanged = false;

  readonly #shared: PipelineShared;
  readonly #tool: AnyTool;
  readonly #call: CallOptions;
  #trace: CallTrace | undefined;
  #resolveRace: ((settled: Settled) => void) | undefined;
  #onCallerAbort: (() => void) | undefined;
  /** The abort answered before the handler settled. */
  #abortAnswered = false;

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
    this.owner = shared.owner;
    this.asking = call.asking;
    this.sealer = shared.sealer;
    this.now = shared.now;
  }

  get meta(): Readonly<Record<string, unknown>> | undefined {
    return this.#call.meta;
  }

  async run(rawArgs: unknown): Promise<CallToolResult | InputRequiredResult> {
    const shared = this.#shared;
    const trace = (this.#trace = startCallSpan(shared.tracer, {
      server: this.server,
      tool: this.spec.name,
      effect: this.spec.effect,
      requestId: this.#call.requestId,
      sessionId: this.#call.sessionId,
      meta: this.#call.meta,
    }));
    shared.active.enter(this);
    let answer: Answer | undefined;
    try {
      answer = await this.#steps(rawArgs);
      return answer.result;
    } catch (error) {
      if (error instanceof ProtocolError) throw error;
      const failure = toToolError(error);
      this.logger.error('tool pipeline failed', { tool: this.spec.name, error });
      answer = refusedAnswer(failure, 'none');
      return answer.result;
    } finally {
      shared.active.leave(this);
      if (answer !== undefined) endCallSpan(trace.span, answer);
    }
  }

  /**
   * The steps, in order: validate, jail, prepare, then idempotency and run — or, for a preview
   * request, the plan's effect alone (no claim, no audit row, nothing applied). A refusal returns early.
   */
  async #steps(rawArgs: unknown): Promise<Answer> {
    const valid = validateArguments(this.#tool, rawArgs, this.#call.meta);
    const request = previewRequest(this.#tool, this.#call.meta);
    const previewing = request.ok && request.value.preview;
    // A preview changes nothing, so nothing of it is audited, not even its refusal.
    const asksPreview = this.#call.meta?.[PREVIEW_META_KEY] === true;
    const audited = (answer: Answer) => (asksPreview ? answer : this.#audited(answer));
    if (!valid.ok) return await audited(refusedAnswer(valid.error, 'none'));
    if (!request.ok) return await audited(refusedAnswer(request.error, 'none'));
    this.input = valid.input;
    this.idempotencyKey = previewing ? undefined : valid.idempotencyKey;
    this.expectedBinding = request.value.expected;

    if (this.spec.paths !== undefined) {
      const paths = await resolveDeclaredPaths(this.spec.paths, this.input, this.jail);
      if (!paths.ok) return await audited(refusedAnswer(paths.error, 'none'));
      this.resolved = paths.value;
    }

    this.#arm();
    try {
      const refused = await prepareCall(this.#shared.prepare, this.#tool.readsPrepared, this);
      if (refused !== undefined) return await audited(refusedAnswer(refused, 'none'));
      if (previewing) return await this.#preview();
      const key = this.idempotencyKey;
      if (key === undefined) {
        const work = this.#start('executed');
        const settled = await this.#race(work);
        if (this.#abortAnswered) this.#auditWhenSettled(work);
        return await this.#audited(this.#ran(settled, 'none'));
      }
      const keyed = await runKeyed({
        store: this.#shared.store,
        options: this.#shared.idempotency,
        scope: this.server,
        key,
        fingerprint: callFingerprint(this.server, this.spec.name, this.input),
        owner: this.#shared.owner,
        tool: this.spec.name,
        logger: this.logger,
        waiters: this.#shared.waiters,
        abort: this.abort,
        inFlight: this.#shared.inFlight,
        crashPoint: this.#shared.crashPoint,
        start: (kind) => this.#start(kind),
        race: (work) => this.#race(work),
        settlementAudit: (done) =>
          this.spec.effect === 'read'
            ? undefined
            : this.#auditEntry({ result: done.rendered.result, outcome: done.outcome, replayed: false }),
        appendAudit: (entry) =>
          appendAudit(this.#shared.audit, entry, { span: this.#trace?.span, logger: this.logger }),
      });
      switch (keyed.kind) {
        case 'replayed':
          return await this.#audited(
            {
              result: keyed.result,
              outcome: keyed.outcome,
              bytes: measure(keyed.result),
              idempotency: 'replayed',
            },
            true,
          );
        case 'refused':
          return await this.#audited(refusedAnswer(keyed.error, keyed.idempotency));
        case 'ran': {
          const answer = this.#ran(keyed.settled, keyed.idempotency);
          // Written with the completion already; an abort that answered first gets its own row.
          return keyed.audited ? answer : await this.#audited(answer);
        }
      }
    } finally {
      this.#disarm();
    }
  }

  /** Preview: the plan's effect, bounded and rendered; raced against the call's cancel and timeout. */
  async #preview(): Promise<Answer> {
    this.#trace?.span?.setAttribute(SpanAttributes.preview, true);
    const work = previewRun(
      this.#tool,
      this.input,
      new CallContext(this),
      this.#trace!,
      this.logger,
      this.#shared.limits,
    );
    return this.#ran(await this.#race(work), 'none');
  }

  /** Run, then bound and render: the handler or plan (or the recovery of an interrupted run). */
  #start(kind: 'executed' | 'recovered'): Promise<Settled> {
    const { store, idempotency } = this.#shared;
    const ctx = new CallContext(this, keyClaimOf(store, idempotency, this.idempotencyKey, kind));
    const tool = this.#tool;
    const run =
      tool.spec.plan === undefined
        ? undefined
        : () =>
            applyPlanned(tool, this.input, ctx, this.expectedBinding, {
              maxFiles: this.#shared.limits.previewMaxFiles,
              onRefused: () => (this.refusedUnchanged = true),
            });
    const execute = () => executeHandler(tool, this.input, ctx, this.#trace!, this.logger, run);
    const work = kind === 'recovered' ? recoverInterrupted(this.#tool, this.input, ctx, execute) : execute();
    return work.then((outcome) => ({
      outcome,
      // A question for the person at the client is neither rendered, stored nor audited.
      rendered:
        pendingInput(outcome) === undefined
          ? renderOutcome(this.#tool, outcome, this.#shared.limits.maxResultBytes)
          : undefined,
      ...(this.refusedUnchanged ? { unchanged: true } : {}),
    }));
  }

  #ran(settled: Settled, idempotency: string): Answer {
    const pending = pendingInput(settled.outcome);
    if (pending !== undefined) return { result: pending, outcome: undefined, bytes: 0, idempotency };
    // The abort's outcome was not rendered with the run: render it now.
    const rendered =
      settled.rendered ?? renderOutcome(this.#tool, settled.outcome, this.#shared.limits.maxResultBytes);
    return { result: rendered.result, outcome: settled.outcome, bytes: rendered.bytes, idempotency };
  }

  /** Audit: mutating calls append a row for what they answered (a pending question is not an answer). */
  async #audited(answer: Answer, replayed = false): Promise<Answer> {
    if (this.spec.effect === 'read' || answer.outcome === undefined) return answer;
    const result = answer.result as CallToolResult;
    const entry = this.#auditEntry({ result, outcome: answer.outcome, replayed });
    await appendAudit(this.#shared.audit, entry, { span: this.#trace?.span, logger: this.logger });
    return answer;
  }

  #auditEntry(answer: Parameters<typeof auditEntryOf>[1]): AuditEntry {
    return auditEntryOf(
      {
        server: this.server,
        tool: this.spec.name,
        input: this.input,
        idempotencyKey: this.idempotencyKey,
        actor: this.auditActor,
      },
      answer,
      { redact: this.#shared.redact, span: this.#trace?.span },
    );
  }

  /**
   * An unkeyed mutating run answered by its abort may still change things before it ends: when it
   * does settle, its own row records what it did (close() waits for it).
   */
  #auditWhenSettled(work: Promise<Settled>): void {
    if (this.spec.effect === 'read') return;
    const late = work.then(
      (done) => (done.rendered === undefined ? undefined : this.#audited(this.#ran(done, 'none'))),
      () => undefined,
    );
    this.#shared.inFlight.add(late);
    void late.finally(() => this.#shared.inFlight.delete(late));
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
    if (this.#resolveRace !== undefined) this.#abortAnswered = true;
    this.#resolveRace?.({ outcome: { ok: false, error: toToolError(reason) }, rendered: undefined });
  }

  #timeoutMs(): number {
    return this.spec.timeoutMs ?? this.#shared.limits.defaultTimeoutMs;
  }

  /**
   * Answers with whichever comes first: the run, or the abort (cancel/timeout). A keyed run keeps its
   * claim until it really settles, so a retry never runs beside a still-running first call.
   */
  #race(work: Promise<Settled>): Promise<Settled> {
    return new Promise((resolve) => {
      this.#resolveRace = resolve;
      this.abort.listen(this);
      void work.then(
        (settled) => this.#settleRace(settled),
        (error: unknown) =>
          this.#settleRace({ outcome: { ok: false, error: toToolError(error) }, rendered: undefined }),
      );
    });
  }

  #settleRace(settled: Settled): void {
    // Unlisten at once: a listener left on the abort state kept the whole call reachable.
    this.abort.unlisten(this);
    const resolve = this.#resolveRace;
    this.#resolveRace = undefined;
    resolve?.(settled);
  }
}
