import type { LimitKind, TaskRunV1, TaskStatus } from '@keel/contracts';
import { KeelError } from '@keel/kit/core';

/** A task as stored: what was asked, under which limits, and how it stands. */
export interface TaskRecord {
  id: string;
  type: string;
  title: string;
  mode: 'orchestrated' | 'single';
  status: TaskStatus;
  createdAt: string;
  endedAt: string | null;
  /** sha256 of the canonical config the task ran under. */
  configHash: string;
  /** The task file as given (validated). */
  spec: unknown;
  /** HEAD, dirty and untracked files, server versions, tool-list hashes: what a replay starts from. */
  startingState: unknown;
  /** The taskRun.v1 record, kept current while the task runs. */
  run: TaskRunV1 | null;
}

export interface EventRecord {
  seq: number;
  taskId: string;
  at: string;
  type: string;
  data: unknown;
  prevHash: string;
  hash: string;
}

export interface ModelCallRecord {
  id?: number;
  taskId: string;
  step: number;
  agent: string;
  provider: string;
  requestedModel: string;
  responseModel: string | null;
  systemSha256: string;
  /** The messages and tools exactly as sent; null once purged. */
  request: unknown;
  /** The provider's raw response body; null once purged. */
  raw: unknown;
  /** The reply as the engine read it (text, tool calls, usage); null once purged. */
  reply: unknown;
  reservedInputTokens: number;
  reservedOutputTokens: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
  latencyMs: number;
  startedAt: string;
  error: string | null;
  /**
   * Which try at this step the call was: 1 first, then one more each time the step's call is
   * recorded again (a failed call repeated on resume). (task, step, attempt) is unique: recording
   * one twice is refused (CONFLICT), so two processes running one task cannot both record a step's
   * try. Left out on a write, the store takes the step's next.
   */
  attempt?: number;
}

export type ToolCallOutcome = 'ok' | 'error' | 'refused';

export interface ToolCallRecord {
  id?: number;
  taskId: string;
  step: number;
  callIndex: number;
  agent: string;
  /** Empty for calls refused before any server was chosen (unknown tool). */
  server: string;
  tool: string;
  idempotencyKey: string | null;
  /** Secrets redacted; null once purged. */
  arguments: unknown;
  /** The result as the model saw it (text) and the structured result; null once purged. */
  result: unknown;
  resultBytes: number;
  latencyMs: number;
  outcome: ToolCallOutcome;
  errorCode: string | null;
  irreversible: boolean;
  /** The side effect computed before the call (files, lines), when it mutates. */
  effect: unknown;
  startedAt: string;
}

export interface ChainVerification {
  ok: boolean;
  events: number;
  /** The first event whose hash does not follow from its content and predecessor. */
  firstBad?: { seq: number; reason: string };
}

export interface PurgeResult {
  modelCalls: number;
  toolCalls: number;
}

export interface TaskListFilter {
  limit?: number;
  status?: TaskStatus;
  type?: string;
}

/** The fields of a task that change while it runs. */
export type TaskPatch = Partial<Pick<TaskRecord, 'status' | 'endedAt' | 'run' | 'startingState'>>;

/** A question for a human as the task asks it; the store adds its status and, later, the decision. */
export type ApprovalRequest = Omit<
  ApprovalRecord,
  'status' | 'decidedAt' | 'decidedBy' | 'decisionReason' | 'decision' | 'consumedBy'
>;

/**
 * A write refused because the task's epoch has moved past the writer's: another process took the
 * task over, or it was killed. Nothing was written; the writer must stop before its next call.
 */
export interface Fenced {
  ok: false;
  code: 'FENCED';
  taskId: string;
  /** The epoch the writer holds. */
  epoch: number;
  /** The task's epoch now; null when it has no ownership record at all. */
  current: number | null;
  message: string;
}

/** What a fenced write did: written (with what it returns), or refused with nothing written. */
export type Fenceable<T> = { ok: true; value: T } | Fenced;

/** A takeover: won, with the epoch every write of the new owner carries; or lost to `current`. */
export type Claim =
  | { ok: true; epoch: number }
  /** `status`: the claim asked to move the task on, and the task was not where it was to move from. */
  | { ok: false; current: TaskOwner | null; status?: TaskStatus | undefined };

/** A status change made in the claim's own transaction: from `from` (else the claim is refused) to `to`. */
export interface ClaimMove {
  from: TaskStatus;
  to: TaskStatus;
}

/**
 * Who owns a task now, its epoch (0 before its first claim) and whether a kill was requested: the
 * one read an owner needs before each call to know it may still make it.
 */
export interface Ownership {
  owner: TaskOwner | null;
  epoch: number;
  killRequested: boolean;
}

/**
 * The writes one owner of a task makes, bound to the task and the epoch its claim returned. Each
 * write checks the task's epoch in the same transaction (PostgreSQL: under a share lock on the
 * ownership row, so a takeover either waits for it or is seen by it) and is refused — FENCED,
 * nothing written — once the epoch has moved.
 */
export interface TaskWriter {
  readonly taskId: string;
  readonly epoch: number;
  appendEvent(type: string, data: unknown, at: Date): Promise<Fenceable<EventRecord>>;
  /** `record.taskId` must be this writer's task (else INVALID_ARGUMENT is thrown). */
  recordModelCall(record: ModelCallRecord): Promise<Fenceable<number>>;
  /** `record.taskId` must be this writer's task (else INVALID_ARGUMENT is thrown). */
  recordToolCall(record: ToolCallRecord): Promise<Fenceable<number>>;
  updateTask(patch: TaskPatch): Promise<Fenceable<void>>;
  /**
   * A run's last event (`task_finished`, `task_paused`), the task's status and the owner's release,
   * in one transaction under the fence: an owner fenced in between can no longer leave the event
   * without the status, for its successor to end the task a second time; one killed right after
   * leaves no owner on the ended task.
   */
  endRun(type: string, data: unknown, at: Date, patch: TaskPatch): Promise<Fenceable<EventRecord>>;
  requestApproval(request: ApprovalRequest, now: Date): Promise<Fenceable<ApprovalRecord>>;
  consumeApproval(
    tool: string,
    argsSha256: string,
    slot: string,
    now: Date,
  ): Promise<Fenceable<ApprovalRecord | undefined>>;
  /**
   * The heartbeat: stamps the owner record's `heartbeatAt`, only while this writer's claim holds
   * the task — it can never overwrite a newer owner. FENCED tells a stalled owner it lost the task.
   */
  renewOwner(heartbeatAt: Date): Promise<Fenceable<void>>;
  /**
   * Changes the owner record under the same fence as {@link TaskWriter.renewOwner}: what an owner
   * learns after its claim, such as the pids of the servers it started for the task.
   */
  updateOwner(patch: Partial<Pick<TaskOwner, 'serverPids'>>): Promise<Fenceable<void>>;
  /**
   * Clears the owner record if it is still this claim's — also after a kill fenced it, so a killed
   * owner can say it has stopped. False when another process has claimed the task since.
   */
  releaseOwner(): Promise<boolean>;
}

/**
 * A store call that lost its connection to the database before it answered: the server restarted,
 * an administrator ended the session, the network dropped. Whether its write landed is not known,
 * so it must not be taken for a refusal. A run that meets it stops as a crash would: nothing more
 * written, its owner record left to go stale, resumed from what the store holds by the worker that
 * takes it over (or by `keel resume`). The SQLite store never throws it.
 */
export class StoreConnectionLost extends KeelError {
  constructor(cause: unknown) {
    super(
      'UNAVAILABLE',
      `the task store's connection was lost: ${(cause as Error)?.message ?? String(cause)}`,
      {
        cause,
        hint: 'Check the database server; the task resumes from its last recorded step (a worker takes it over once its heartbeat is stale, or: keel resume TASK).',
      },
    );
  }
}

/**
 * Everything the harness keeps about tasks. Every method is async so a PostgreSQL backend drops
 * in; the SQLite one answers synchronously inside. Events form one hash chain over the store.
 *
 * Ownership is fenced. A task's ownership record carries an epoch that grows on every takeover
 * ({@link TaskStore.claimOwner}) and on every kill request ({@link TaskStore.requestKill}). The
 * process that runs a task claims it (a new task: expected owner null), then makes every write
 * of the task through {@link TaskStore.writer}`(taskId, epoch)`: events, model and tool call
 * records, status, approvals, its heartbeat ({@link TaskWriter.renewOwner}) and its release at
 * the end ({@link TaskWriter.releaseOwner}). Once another process claims the task or a kill is
 * requested, every one of those writes is refused with FENCED and leaves no row; the owner stops
 * before its next call. The unfenced writes below (`appendEvent`, `recordModelCall`, ...) are for
 * writes no owner makes: a person's decision, a kill marking a task killed (through a writer at the
 * epoch `requestKill` returned, when it should lose to a later takeover), a queued task's first
 * event, a replay's own record.
 */
export interface TaskStore {
  createTask(task: TaskRecord): Promise<void>;
  updateTask(id: string, patch: TaskPatch): Promise<void>;
  getTask(id: string): Promise<TaskRecord | undefined>;
  /** Newest first. */
  listTasks(filter?: TaskListFilter): Promise<TaskRecord[]>;
  /** Appends to the chain, stamped `at` (the caller's clock). */
  appendEvent(taskId: string, type: string, data: unknown, at: Date): Promise<EventRecord>;
  listEvents(taskId: string): Promise<EventRecord[]>;
  verifyEvents(): Promise<ChainVerification>;
  recordModelCall(record: ModelCallRecord): Promise<number>;
  listModelCalls(taskId: string): Promise<ModelCallRecord[]>;
  recordToolCall(record: ToolCallRecord): Promise<number>;
  listToolCalls(taskId: string): Promise<ToolCallRecord[]>;
  /** Deletes model-call bodies and tool payloads older than `before`, stamped `now`; never events. */
  purge(before: Date, now: Date): Promise<PurgeResult>;
  /**
   * Records a question for a human; an open one for the same call (unexpired at `now`, the caller's
   * clock) is returned instead of a second.
   */
  requestApproval(approval: ApprovalRequest, now: Date): Promise<ApprovalRecord>;
  getApproval(id: string): Promise<ApprovalRecord | undefined>;
  listApprovals(filter?: { status?: ApprovalStatus; taskId?: string }): Promise<ApprovalRecord[]>;
  /** Approves or denies a pending approval, once; a second decision or an expired one is refused. */
  decideApproval(
    id: string,
    decision: { approve: boolean; by: string; reason: string | null; decision?: unknown; now: Date },
  ): Promise<Decision>;
  /**
   * The approval that lets this call slot run, consuming it: an approved one for the same task, tool
   * and arguments hash, or one this same slot consumed before (a resumed task repeating its call).
   */
  consumeApproval(
    taskId: string,
    tool: string,
    argsSha256: string,
    slot: string,
    now: Date,
  ): Promise<ApprovalRecord | undefined>;
  /**
   * Takes a task over from `expected` (the owner as read, or null), atomically, and moves its
   * epoch on: every write of a previous owner is fenced from here. Lost when another process
   * changed the owner meanwhile — so two workers never both take over a dead one's task. With
   * `move`, the task's status moves in the same transaction (a queued task to `starting`): a lost
   * connection never leaves a task claimed but still `queued`, which no takeover looks at.
   */
  claimOwner(taskId: string, expected: TaskOwner | null, next: TaskOwner, move?: ClaimMove): Promise<Claim>;
  /** The writes of the owner that claimed `taskId` at `epoch`, each refused once the epoch moves. */
  writer(taskId: string, epoch: number): TaskWriter;
  getOwner(taskId: string): Promise<TaskOwner | null>;
  getOwnership(taskId: string): Promise<Ownership>;
  /**
   * A durable kill request; the owner checks it when signalled and before each call. It moves the
   * epoch on, so the owner's writes are fenced from here; returns the new epoch.
   */
  requestKill(taskId: string, at: Date): Promise<number>;
  killRequested(taskId: string): Promise<boolean>;
  /** The global stop: while set, no new task starts. */
  setGlobalStop(stop: { by: string; at: string } | null): Promise<void>;
  /** Tells every process that shares the store to look for kill requests now (PostgreSQL: NOTIFY). */
  announceKill?(taskId: string): Promise<void>;
  /** Calls `listener` whenever a kill is announced by any process; returns how to stop listening. */
  listenForKills?(listener: (taskId: string) => void): Promise<() => Promise<void>>;
  getGlobalStop(): Promise<{ by: string; at: string } | null>;
  close(): Promise<void>;
  /** Finished tasks' summaries, in no particular order (`keel stats`, `keel eval`). */
  listTaskSummaries(filter?: TaskSummaryFilter): Promise<TaskSummary[]>;
  /** Finished tasks' figures per type, summed (`keel stats` over many tasks). */
  aggregateTaskSummaries(filter?: TaskSummaryFilter): Promise<TaskAggregate[]>;
}

export type ApprovalKind = 'tool' | 'escalation';
export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'expired' | 'consumed';

/**
 * A question for a human, durable: an irreversible tool call waiting for approval (bound to the
 * tool and the sha256 of its canonical arguments), or an escalated task waiting to be continued or
 * aborted.
 */
export interface ApprovalRecord {
  id: string;
  taskId: string;
  kind: ApprovalKind;
  status: ApprovalStatus;
  agent: string;
  step: number;
  callIndex: number;
  server: string | null;
  tool: string | null;
  argsSha256: string | null;
  /** Redacted, for the person deciding. */
  arguments: unknown;
  /** Why a human must decide: the irreversibility reason, taint, policy, the loop or limit. */
  reasons: string[];
  summary: string;
  requestedAt: string;
  expiresAt: string;
  decidedAt: string | null;
  decidedBy: string | null;
  decisionReason: string | null;
  /** For an escalation: `{ action: 'continue', raise, hint }` or `{ action: 'abort' }`. */
  decision: unknown;
  /** The call slot (`step:callIndex`) that consumed it; a replay of that same slot may use it again. */
  consumedBy: string | null;
}

export type Decision =
  | { ok: true; approval: ApprovalRecord }
  | {
      ok: false;
      code: 'NOT_FOUND' | 'ALREADY_DECIDED' | 'EXPIRED';
      message: string;
      approval?: ApprovalRecord;
    };

/** The process that runs a task now: `keel kill` signals it, and checks it is still the same process. */
export interface TaskOwner {
  pid: number;
  /** The process's start time (from /proc), so a recycled pid is never signalled. */
  startTime: string;
  host: string;
  /** The stdio servers it started for this task: their tool processes are reaped after a kill. */
  serverPids: number[];
  /** Set when a `keel worker` runs the task: other workers take it over once its heartbeat is stale. */
  worker?: string;
  heartbeatAt?: string;
}

/** How a limit stop is written in a task's outcome. */
export interface LimitStop {
  limit: LimitKind;
  message: string;
  overshoot?: number;
}

/** The figures `keel stats` and `keel eval` read per finished task. */
export interface TaskSummary {
  taskId: string;
  type: string;
  mode: string;
  status: string;
  createdAt: string;
  /** From creation to end; null while the task has no end. */
  latencyMs: number | null;
  steps: number;
  inputTokens: number;
  outputTokens: number;
  /** Of `inputTokens`, those a provider reported as read from its prompt cache. */
  cachedInputTokens: number;
  costUsd: number;
  approvalsAsked: number;
  toolCalls: number;
}

export interface TaskSummaryFilter {
  type?: string;
  /** ISO time, inclusive. */
  since?: string;
  /** ISO time, exclusive. */
  until?: string;
}

/** One task type's finished tasks, summed; latencies and costs sorted ascending. */
export interface TaskAggregate {
  type: string;
  tasks: number;
  succeeded: number;
  steps: number;
  inputTokens: number;
  outputTokens: number;
  cachedInputTokens: number;
  costUsd: number;
  latenciesMs: Float64Array;
  /** Each task's cost, one per task. */
  costsUsd: Float64Array;
}
