import { canonicalJson, sha256Hex } from '@keel/kit/core';
import type { Context, Tracer } from '@opentelemetry/api';
import type { LimitKind } from '@keel/contracts';
import type { ApprovalGate } from '../approvals/gate.js';
import { createTrust } from '../approvals/trust.js';
import type { AgentConfig, Limits, Loops, Price, SideEffects } from '../config/schema.js';
import type { Clock } from '../clock.js';
import { Budget } from '../limits/budget.js';
import { LoopDetector, type LoopFinding } from '../limits/loops.js';
import type { UsageWhenMissing } from '../limits/usage.js';
import { SideEffectLedger } from '../limits/sideEffects.js';
import type { CatalogTool, ConnectedServer } from '../mcp/servers.js';
import type { Model, ModelMessage, ModelReply, ModelToolCall, ModelToolDefinition } from '../models/model.js';
import type { Fenced, TaskStore, TaskWriter, ToolCallRecord } from '../store/taskStore.js';
import { GenAi, startSpan } from '../telemetry/spans.js';
import type { CrashPoint } from './crashPoints.js';
import type { ResumeState } from './resume.js';
import { admit, checkLoop, loopStop, type AdmitContext, type Refusal } from './stages/admit.js';
import type { AgentRun, ToolSlot } from './stages/call.js';
import { createClassifier, type Classifier } from './stages/classify.js';
import { expectPreviewMeta, realWorkspace, sizeEffect, type EffectContext } from './stages/effect.js';
import { escalate, type EscalationContext } from './stages/escalate.js';
import { createTaskFacts } from './stages/facts.js';
import { passGate, requireApproval, type GateContext } from './stages/gate.js';
import {
  callModel,
  reserveModelCall,
  type AgentUse,
  type ModelCallContext,
  type RetryPolicy,
} from './stages/modelCall.js';
import type { AgentContext } from './context/keeper.js';
import {
  agentContext,
  answerRecall,
  cannotFit,
  refusedAsTooLong,
  type ContextOptions,
} from './context/stage.js';
import { observe, protocolError, refusal, type ObserveContext, type ToolAnswer } from './stages/observe.js';
import {
  createRecorder,
  failureFields,
  refusalRecord,
  resultFields,
  resultFromRecord,
  sentRecord,
  type Recorder,
  type ToolCallLine,
} from './stages/record.js';
import { reserveOrEscalate, type Escalate } from './stages/reserve.js';
import { send, type CallBounds, type Sent, type SendContext } from './stages/send.js';
import { done, stopped, type Step, type Stop } from './stop.js';
import { WorkspaceFingerprint } from './workspaceState.js';

/** What the terminal (or a test) is told while a task runs. */
export interface ProgressEvent {
  kind: 'agent' | 'model' | 'tool' | 'note';
  step: number;
  agent: string;
  detail: string;
  usage: Budget['used'];
  limits: Limits;
  msLeft: number;
}

export type ProgressSink = (event: ProgressEvent) => void;

export type { AgentRun } from './stages/call.js';
export type { ToolAnswer } from './stages/observe.js';

export interface SessionOptions {
  taskId: string;
  /** Read only: every write of the task goes through `writer`. */
  store: TaskStore;
  /** The owner's writes, at the epoch its claim returned. */
  writer: TaskWriter;
  /** Chaos runs only (KEEL_CRASH_AT). */
  crashPoint?: CrashPoint;
  /** How provider faults are retried; default `defaultRetry`. */
  retry?: RetryPolicy;
  servers: Map<string, ConnectedServer>;
  workspace: string;
  limits: Limits;
  loops: Loops;
  sideEffects: SideEffects;
  extraIrreversible: readonly string[];
  /** Globs: a mutating call whose computed effect changes a matching path is irreversible. */
  irreversiblePaths?: readonly string[];
  approvalEnvironments: ReadonlySet<string> | undefined;
  /**
   * Settles once the run's start is recorded: no tool call is sent before, and one that was asked
   * waits for it. Default: started.
   */
  started?: Promise<unknown>;
  /**
   * Settles once the run's starting state is read and recorded: a call that is not read-only is
   * not sent before, so the state is the one the task found. Default: captured.
   */
  captured?: Promise<unknown>;
  tracer: Tracer | undefined;
  rootContext: Context;
  clock: Clock;
  progress: ProgressSink;
  /** Aborted by a kill (SIGINT/SIGTERM of this process, or `keel kill` through the store). */
  kill: AbortSignal;
  gate: ApprovalGate;
  /** Limit kinds that wait for a human instead of stopping. */
  escalateLimits: readonly LimitKind[];
  /** Set when the task resumes after a crash, a kill of its process, an approval or an escalation. */
  resume: ResumeState | undefined;
  /** Wall-clock time the task already ran before this run (a resumed task keeps its deadline). */
  elapsedMs?: number;
  /** Models with a context window, and decisions recorded by step (resume, replay). */
  context?: ContextOptions;
  /** `models.<name>.usageWhenMissing`; default `reservation`. */
  usageWhenMissing?: (model: string) => UsageWhenMissing;
}

/** What a moved epoch says, in the shape of a refused write. */
export const movedOn = (taskId: string, epoch: number, current: number): Fenced => ({
  ok: false,
  code: 'FENCED',
  taskId,
  epoch,
  current,
  message: `task ${taskId} is at epoch ${current} (taken over or killed); this run held epoch ${epoch}`,
});

/** How a human's hint from a continued escalation reaches the model. */
export const hintMessage = (hint: string): ModelMessage => ({
  role: 'user',
  content: `A human supervising this task says: ${hint}`,
});

/**
 * One task's run: the one place every model call and every tool call passes, and nothing else in
 * the harness talks to a model or a server. It coordinates the stages (engine/stages/): a tool call
 * is admitted, answered from its record when a resumed task repeats it, classified, its effect
 * sized, gated, sent, observed and recorded; a model call is reserved, sent, settled and recorded.
 * The session holds the task's state and hands each stage the small context it needs.
 */
export class TaskSession {
  readonly options: SessionOptions;
  readonly budget: Budget;
  readonly loops: LoopDetector;
  readonly ledger: SideEffectLedger;
  readonly catalog = new Map<string, CatalogTool>();
  readonly contracts: unknown[] = [];
  readonly #recorder: Recorder;
  readonly #escalation: EscalationContext;
  readonly #admission: AdmitContext;
  readonly #observing: ObserveContext;
  readonly #effects: EffectContext;
  readonly #gating: GateContext;
  readonly #sending: SendContext;
  readonly #modelCalls: ModelCallContext;
  readonly #fingerprint: WorkspaceFingerprint;
  #workspaceHash: string;
  #workspaceDirty = false;
  readonly #invocations = new Map<string, number>();
  readonly #agentUse = new Map<string, AgentUse>();
  readonly #facts = createTaskFacts();
  readonly #classifier: Classifier;
  readonly #hints: string[] = [];
  readonly #contexts = new WeakMap<AgentRun, AgentContext | undefined>();
  #killedByRequest = false;
  #fenced: Fenced | undefined;
  #globalStop: { by: string; at: string } | undefined;
  readonly #abort = new AbortController();
  readonly #onKill = () => this.#abort.abort(new Error('killed'));
  readonly #bounds: CallBounds = { signal: this.#abort.signal, msLeft: () => this.budget.msLeft() };
  #deadlineTimer: NodeJS.Timeout | undefined;
  step = 0;

  constructor(options: SessionOptions) {
    this.options = options;
    this.budget = new Budget(options.limits, options.clock, options.clock.now() - (options.elapsedMs ?? 0));
    this.loops = new LoopDetector(options.loops);
    this.ledger = new SideEffectLedger(options.sideEffects);
    this.#recorder = createRecorder({
      writer: options.writer,
      taskId: options.taskId,
      resume: options.resume,
      clock: options.clock,
      onFenced: (fenced) => this.fence(fenced),
      ...(options.crashPoint === undefined ? {} : { crashPoint: options.crashPoint }),
    });
    const event = (type: string, data: unknown) => this.event(type, data);
    const escalateStop: Escalate = (stop) => this.escalate(stop);
    this.#escalation = {
      store: options.store,
      writer: options.writer,
      onFenced: (fenced) => this.fence(fenced),
      taskId: options.taskId,
      clock: options.clock,
      escalateLimits: options.escalateLimits,
      gate: options.gate,
      budget: this.budget,
      event,
    };
    for (const server of options.servers.values())
      for (const tool of server.tools) if (!this.catalog.has(tool.name)) this.catalog.set(tool.name, tool);
    this.#fingerprint = new WorkspaceFingerprint(options.workspace);
    this.#classifier = createClassifier(
      {
        workspace: options.workspace,
        approvalEnvironments: options.approvalEnvironments,
        extraIrreversible: options.extraIrreversible,
        ...(options.irreversiblePaths === undefined ? {} : { irreversiblePaths: options.irreversiblePaths }),
      },
      this.#facts,
    );
    this.#observing = {
      workspace: options.workspace,
      gate: options.gate,
      trust: createTrust(options.gate.trustedTools, options.servers.values()),
      ledger: this.ledger,
      facts: this.#facts,
      event,
      workspaceChanged: () => {
        this.#workspaceDirty = true;
      },
    };
    this.#effects = {
      workspaceReal: realWorkspace(options.workspace),
      ledger: this.ledger,
      bounds: this.#bounds,
      escalate: escalateStop,
      event,
    };
    this.#gating = {
      gate: options.gate,
      plans: this.#facts.plans,
      event,
      progress: (agent, detail) => this.progress('note', agent, detail),
    };
    this.#sending = {
      taskId: options.taskId,
      tracer: options.tracer,
      bounds: this.#bounds,
      clock: options.clock,
    };
    this.#admission = {
      killed: () => this.#killed(),
      abortStop: () => this.abortStop(),
      budget: this.budget,
      escalate: escalateStop,
      loops: this.loops,
      onLoop: options.loops.onLoop,
      catalog: this.catalog,
    };
    this.#modelCalls = {
      ...(options.retry === undefined ? {} : { retry: options.retry }),
      taskId: options.taskId,
      tracer: options.tracer,
      budget: this.budget,
      usageWhenMissing: options.usageWhenMissing ?? (() => 'reservation'),
      event,
      signal: this.#abort.signal,
      recorder: this.#recorder,
      clock: options.clock,
      abortStop: () => this.abortStop(),
      progress: (agent, detail) => this.progress('model', agent, detail),
    };
    this.#workspaceHash = this.#fingerprint.compute();
    // The starting state is the baseline: a first step that changes nothing is not progress.
    this.loops.observeState(this.stateHash());
    if (options.kill.aborted) this.#onKill();
    options.kill.addEventListener('abort', this.#onKill, { once: true });
    this.#deadlineTimer = this.#armDeadline();
  }

  /**
   * The deadline cancels in-flight calls — unless the wall-clock limit escalates: then the call in
   * flight finishes (each tool call's own timeout still ends at the deadline), and the next
   * reservation finds the limit reached and asks a human instead of ending the task.
   */
  #armDeadline(): NodeJS.Timeout | undefined {
    if (this.options.escalateLimits.includes('wall_clock')) return undefined;
    const timer = setTimeout(
      () => this.#abort.abort(new Error('wall-clock limit reached')),
      Math.max(0, this.budget.msLeft()),
    );
    timer.unref();
    return timer;
  }

  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** A worker's stop signal outlives its tasks: each task takes its listener off it when it ends. */
  dispose(): void {
    clearTimeout(this.#deadlineTimer);
    this.options.kill.removeEventListener('abort', this.#onKill);
  }

  /** Why the task's signal fired, as a stop. */
  abortStop(): Stop {
    if (this.options.kill.aborted || this.#killedByRequest)
      return { status: 'killed', message: 'the task was killed' };
    if (this.#globalStop !== undefined)
      return {
        status: 'killed',
        message: `a global stop is in force (since ${this.#globalStop.at}, by ${this.#globalStop.by}): the task stopped before its next call`,
      };
    if (this.#fenced !== undefined)
      return { status: 'killed', message: `this process no longer owns the task: ${this.#fenced.message}` };
    return {
      status: 'limit',
      limit: 'wall_clock',
      message: `wall-clock limit of ${this.budget.limits.wallClockMs} ms reached`,
    };
  }

  /** Aborts the task for a kill: in-flight model and tool calls are cancelled. */
  kill(): void {
    this.#killedByRequest = true;
    this.#abort.abort(new Error('killed'));
  }

  /** The run's start could not be recorded: in-flight calls are cancelled, and nothing more is sent. */
  abandon(): void {
    this.#abort.abort(new Error('the task start-up failed'));
  }

  /**
   * The task is no longer this process's to run: another process claimed it, or a kill moved its
   * epoch on. In-flight calls are cancelled and nothing more is written (the store would refuse it).
   */
  fence(fenced: Fenced): void {
    this.#fenced ??= fenced;
    this.#abort.abort(new Error('fenced'));
  }

  /** Set once a write was refused or the epoch was seen to move: the run ends without a write. */
  get fenced(): Fenced | undefined {
    return this.#fenced;
  }

  /**
   * Checked before every model and tool call, with one read of the task's ownership: a kill
   * request or a newer claim stops the task here, even if its signal was missed.
   */
  async #killed(): Promise<boolean> {
    if (this.signal.aborted) return true;
    const { epoch } = this.options.writer;
    const [ownership, globalStop] = await Promise.all([
      this.options.store.getOwnership(this.options.taskId),
      this.options.store.getGlobalStop(),
    ]);
    // A task that started as `keel kill --all` listed the tasks (its row not yet there) stops here.
    if (globalStop !== null && !this.signal.aborted) {
      this.#globalStop = globalStop;
      this.#abort.abort(new Error('global stop'));
    }
    if (ownership.killRequested) this.#killedByRequest = true;
    if (ownership.epoch !== epoch) this.fence(movedOn(this.options.taskId, epoch, ownership.epoch));
    else if (ownership.killRequested) this.kill();
    return this.signal.aborted;
  }

  /** The same check, when `keel kill` rings (SIGUSR2, a NOTIFY): a kill or takeover stops in-flight calls now. */
  async checkOwnership(): Promise<void> {
    await this.#killed();
  }

  /** Whether the run stopped for a kill asked for through the store (the killer records the end). */
  get killedByRequest(): boolean {
    return this.#killedByRequest;
  }

  /** Each tool call's line in the run's summary. */
  get toolCalls(): ToolCallLine[] {
    return this.#recorder.toolCalls;
  }

  event(type: string, data: unknown): Promise<void> {
    return this.#recorder.event(type, data);
  }

  /** Human hints from a continued escalation, delivered once as messages to the next model call. */
  takeHints(): string[] {
    return this.#hints.splice(0);
  }

  /**
   * A stop that may wait for a human instead (the escalation stage): a human's continue raises the
   * limits they raised, restarts the loop history and passes their hint to the next model call.
   */
  async escalate(stop: Stop): Promise<Step<true>> {
    const escalation = await escalate(this.#escalation, stop, this.step);
    if (!escalation.ok) return escalation;
    const { approval, decision } = escalation.value;
    if (decision.raise !== undefined) {
      this.budget.raise(decision.raise);
      clearTimeout(this.#deadlineTimer);
      this.#deadlineTimer = this.#armDeadline();
    }
    this.loops.reset();
    if (decision.hint !== undefined && decision.hint !== '') this.#hints.push(decision.hint);
    await this.event('escalation_continued', { approval: approval.id, by: approval.decidedBy, ...decision });
    this.progress('note', 'orchestrator', `continued by ${approval.decidedBy ?? 'a human'} (${approval.id})`);
    return done(true);
  }

  progress(kind: ProgressEvent['kind'], agent: string, detail: string): void {
    this.options.progress({
      kind,
      step: this.step,
      agent,
      detail,
      usage: this.budget.used,
      limits: this.budget.limits,
      msLeft: this.budget.msLeft(),
    });
  }

  /** Opens an agent invocation with the tools of its scope. */
  startAgent(
    role: string,
    config: AgentConfig,
    model: Model,
    price: Price | undefined,
    scope: Map<string, CatalogTool>,
    options: { span?: boolean; toModel?: boolean } = {},
  ): AgentRun {
    const invocation = (this.#invocations.get(role) ?? 0) + 1;
    this.#invocations.set(role, invocation);
    const span =
      this.options.tracer === undefined || options.span === false
        ? undefined
        : startSpan(this.options.tracer, `invoke_agent ${role}`, this.options.rootContext, {
            [GenAi.operation]: 'invoke_agent',
            [GenAi.agentName]: role,
            [GenAi.agentId]: `${this.options.taskId}/${role}/${invocation}`,
            [GenAi.conversationId]: this.options.taskId,
          });
    return {
      role,
      invocation,
      config,
      model,
      price,
      scope,
      span,
      ...(options.toModel === undefined ? {} : { toModel: options.toModel }),
    };
  }

  #parent(agent: AgentRun): Context {
    return agent.span?.ctx ?? this.options.rootContext;
  }

  /** The agent's context keeper, when its model has a window: then it has `recall` too. */
  contextOf(agent: AgentRun): AgentContext | undefined {
    if (!this.#contexts.has(agent))
      this.#contexts.set(agent, agentContext(this.options.context, agent.config));
    return this.#contexts.get(agent);
  }

  /**
   * A model call, as its steps: fitted to the model's window (older results elided, when it has
   * one), reserved against the limits (escalating if policy says so), sent with the task's deadline
   * as its signal, settled against what the provider reported, and recorded whole before any tool
   * call it asks for starts. A provider that refuses the request as too long gets it once more,
   * cut harder; a second refusal ends the task at its `context_window` limit.
   */
  async model(
    agent: AgentRun,
    messages: ModelMessage[],
    tools: ModelToolDefinition[],
  ): Promise<Step<ModelReply>> {
    if (await this.#killed()) return stopped(this.abortStop());
    const use = this.#agentUse.get(agent.role) ?? { steps: 0, tokens: 0 };
    const context = this.contextOf(agent);
    const maxTokens = agent.config.maxTokens;
    let planned = context?.plan(messages, tools, maxTokens, this.step + 1, false);
    if (planned !== undefined && !planned.decision.fits)
      return stopped(cannotFit(this.step + 1, planned.decision, maxTokens));
    const sent = () => planned?.messages ?? messages;
    const reserved = await reserveOrEscalate(
      () => reserveModelCall(this.budget, agent, use, { messages: sent(), tools }),
      (stop) => this.escalate(stop),
      // A hint given with the continue is for this very call, not the one after it.
      () => {
        const hints = this.takeHints().map(hintMessage);
        messages.push(...hints);
        planned?.messages.push(...hints);
      },
    );
    if (!reserved.ok) return reserved;
    this.step++;
    use.steps++;
    this.#agentUse.set(agent.role, use);
    const turn = { agent, step: this.step, use, parent: this.#parent(agent) };
    let reply = await callModel(
      this.#modelCalls,
      planned === undefined ? turn : { ...turn, context: planned.decision },
      sent(),
      tools,
      reserved.value,
    );
    if (context !== undefined && !reply.ok && refusedAsTooLong(reply.stop)) {
      await this.event('context_refused', {
        agent: agent.role,
        step: this.step,
        message: reply.stop.message,
      });
      planned = context.plan(messages, tools, maxTokens, this.step, true);
      const again = reserveModelCall(this.budget, agent, use, { messages: planned.messages, tools });
      if (!again.ok) return stopped({ status: 'limit', limit: again.limit, message: again.message });
      reply = await callModel(
        this.#modelCalls,
        { ...turn, context: planned.decision },
        planned.messages,
        tools,
        again.reservation,
      );
      if (!reply.ok && refusedAsTooLong(reply.stop))
        return stopped(
          cannotFit(
            this.step,
            planned.decision,
            maxTokens,
            `the provider refused the request as too long twice, the second time with every older tool result elided (${reply.stop.message})`,
          ),
        );
    }
    // A reply without an input count leaves the window estimate on its byte bound.
    const reportedInput = reply.ok ? reply.value.usage.inputTokens : undefined;
    if (planned !== undefined && reportedInput !== undefined)
      context?.settle(planned.messages, reportedInput);
    return reply;
  }

  /** The supervisor's `recall`: admitted like any call (kill, reservation, loop), answered from `source`. */
  async recall(
    agent: AgentRun,
    call: ModelToolCall,
    callIndex: number,
    source: readonly ModelMessage[],
  ): Promise<Step<ToolAnswer>> {
    if (await this.#killed()) return stopped(this.abortStop());
    const reserved = await reserveOrEscalate(
      () => this.budget.reserveToolCall(),
      (stop) => this.escalate(stop),
    );
    if (!reserved.ok) return reserved;
    const loop = this.checkLoop(call);
    if (loop !== undefined) {
      const escalation = await this.escalate(this.loopStop(loop));
      if (!escalation.ok) return escalation;
    }
    this.progress('tool', agent.role, `keel.recall`);
    return done(
      await answerRecall(
        { taskId: this.options.taskId, clock: this.options.clock, recorder: this.#recorder },
        { agent: agent.role, step: this.step, callIndex, call },
        source,
      ),
    );
  }

  /**
   * A tool call from a model (or the orchestrator), as its steps: admitted (kill, reservation, loop,
   * scope, arguments), answered from its record when a resumed task repeats it, classified and its
   * side effect sized against the caps, passed through the approval gate, then sent with its
   * idempotency key and trace context, and recorded.
   */
  async tool(agent: AgentRun, call: ModelToolCall, callIndex: number): Promise<Step<ToolAnswer>> {
    await this.options.started;
    const admitted = await admit(this.#admission, agent, call);
    if (admitted.kind === 'stopped') return stopped(admitted.stop);
    if (admitted.kind === 'refused')
      return done(await this.#refuse(agent, call, callIndex, admitted.refusal));
    const { tool, args } = admitted;
    const step = this.step;
    const recorded = this.options.resume?.toolSlots.get(`${step}:${callIndex}`);
    let classification = this.#classifier.call(tool.name, args);
    if (recorded !== undefined && recorded.result !== null)
      return done(
        await this.#replayRecorded(
          agent,
          { step, call, tool, args, toModel: agent.toModel },
          recorded,
          classification.irreversible,
        ),
      );
    const server = this.options.servers.get(tool.server)!;
    const parent = this.#parent(agent);
    const effect = await sizeEffect(this.#effects, server, tool, args, parent);
    if (!effect.ok) return effect;
    classification = this.#classifier.effect(tool.name, classification, effect.value);
    const slot: ToolSlot = {
      agent: agent.role,
      step,
      callIndex,
      call,
      tool,
      args,
      toModel: agent.toModel,
      classification,
      effect: effect.value,
    };
    const gate = await passGate(this.#gating, slot);
    if (!gate.ok) return gate;
    if (tool.annotations.readOnlyHint !== true) await this.options.captured;
    this.progress(
      'tool',
      agent.role,
      `${tool.server}.${tool.name}${classification.irreversible ? ' (irreversible)' : ''}`,
    );
    const sent = await send(this.#sending, server, slot, parent, {
      ...gate.value,
      ...expectPreviewMeta(slot.effect),
    });
    if (!sent.ok) return this.#threw(slot, sent);
    const { result } = sent;
    if (
      result.isError &&
      result.error?.code === 'APPROVAL_REQUIRED' &&
      gate.value['keel/approval'] === undefined
    ) {
      // Never a question for the model: the call waits for a human like any irreversible one. The
      // server's words reach the human's approval and the task's outcome, so they are observed too.
      const asked = await requireApproval(this.#gating, slot, result.error.message);
      if (!asked.ok) {
        await observe(this.#observing, slot, result, slot.effect);
        return asked;
      }
    }
    const answer = await observe(this.#observing, slot, result, slot.effect);
    await this.#recorder.toolCall(
      sentRecord(
        this.options.taskId,
        slot,
        sent,
        resultFields(result, sent.latencyMs, tool.annotations.readOnlyHint === true ? null : slot.effect),
      ),
    );
    return done(answer);
  }

  /** A call admission refused: recorded, and answered with the refusal as a tool error. */
  async #refuse(
    agent: AgentRun,
    call: ModelToolCall,
    callIndex: number,
    refused: Refusal,
  ): Promise<ToolAnswer> {
    await this.#recorder.toolCall(
      refusalRecord(
        this.options.taskId,
        { step: this.step, callIndex, agent: agent.role, call },
        refused,
        new Date(this.options.clock.now()).toISOString(),
      ),
    );
    this.progress('tool', agent.role, `${call.name} refused: ${refused.code}`);
    return refusal(call, refused);
  }

  /**
   * A call that threw: recorded; the task stops if its signal fired, or — resumable — if its server
   * died with it; else the model gets a protocol error. A dead server is not restarted here: it
   * may have died of this very call, and `keel resume` starts every server afresh and sends the
   * call again under the same idempotency key (a replay, if the effect had completed).
   */
  async #threw(slot: ToolSlot, sent: Extract<Sent, { ok: false }>): Promise<Step<ToolAnswer>> {
    const server = this.options.servers.get(slot.tool.server);
    const gone = !sent.cancelled && server !== undefined && !server.isOpen();
    await this.#recorder.toolCall(
      sentRecord(
        this.options.taskId,
        slot,
        sent,
        failureFields(sent.message, sent.cancelled, sent.latencyMs, slot.effect, gone),
      ),
    );
    if (this.signal.aborted) return stopped(this.abortStop());
    if (gone)
      return stopped({
        status: 'error',
        message: `server '${slot.tool.server}' died during ${slot.tool.name} (${sent.message}): keel resume ${this.options.taskId} starts it again and sends the call again under the same idempotency key`,
      });
    // A protocol error (schema violation, server gone) goes back to the model like a tool error,
    // through observe: its message is the server's words like any result's.
    return done(await observe(this.#observing, slot, protocolError(sent.message), slot.effect));
  }

  /**
   * A resumed task's call whose result was recorded before it stopped: the model gets that result
   * again, with no server call — a read run again could answer differently (a plan made before a
   * deploy), and a write would only be replayed by its idempotency key anyway.
   */
  async #replayRecorded(
    agent: AgentRun,
    seen: Pick<ToolSlot, 'step' | 'call' | 'tool' | 'args' | 'toModel'>,
    recorded: ToolCallRecord,
    irreversible: boolean,
  ): Promise<ToolAnswer> {
    const { tool } = seen;
    const { result, effect } = resultFromRecord(recorded);
    this.progress('tool', agent.role, `${tool.server}.${tool.name} (recorded)`);
    const answer = await observe(this.#observing, seen, result, effect);
    this.#recorder.count({
      server: tool.server,
      tool: tool.name,
      latencyMs: recorded.latencyMs,
      ok: !result.isError,
      irreversible,
    });
    return answer;
  }

  /** The loop check, for calls the harness answers itself (final tools) as much as for server calls. */
  checkLoop(call: ModelToolCall): LoopFinding | undefined {
    return checkLoop(this.loops, call);
  }

  loopStop(finding: LoopFinding): Stop {
    return loopStop(this.options.loops.onLoop, finding);
  }

  /** The task's state for no-progress detection: workspace content and contracts so far. */
  stateHash(): string {
    if (this.#workspaceDirty) {
      this.#workspaceHash = this.#fingerprint.compute();
      this.#workspaceDirty = false;
    }
    return sha256Hex(`${this.#workspaceHash}\n${canonicalJson(this.contracts)}`);
  }

  /** Counts an accepted contract as progress. */
  addContract(value: unknown): void {
    this.contracts.push(value);
  }
}
