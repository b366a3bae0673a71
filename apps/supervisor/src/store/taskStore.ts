import type { LimitKind, TaskRunV1, TaskStatus } from '@keel/contracts';

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

/**
 * Everything the harness keeps about tasks. Every method is async so a PostgreSQL backend drops
 * in; the SQLite one answers synchronously inside. Events form one hash chain over the store.
 */
export interface TaskStore {
  createTask(task: TaskRecord): Promise<void>;
  updateTask(
    id: string,
    patch: Partial<Pick<TaskRecord, 'status' | 'endedAt' | 'run' | 'startingState'>>,
  ): Promise<void>;
  getTask(id: string): Promise<TaskRecord | undefined>;
  /** Newest first. */
  listTasks(filter?: TaskListFilter): Promise<TaskRecord[]>;
  appendEvent(taskId: string, type: string, data: unknown): Promise<EventRecord>;
  listEvents(taskId: string): Promise<EventRecord[]>;
  verifyEvents(): Promise<ChainVerification>;
  recordModelCall(record: ModelCallRecord): Promise<number>;
  listModelCalls(taskId: string): Promise<ModelCallRecord[]>;
  recordToolCall(record: ToolCallRecord): Promise<number>;
  listToolCalls(taskId: string): Promise<ToolCallRecord[]>;
  /** Deletes model-call bodies and tool payloads older than `before`; never events. */
  purge(before: Date): Promise<PurgeResult>;
  close(): Promise<void>;
}

/** How a limit stop is written in a task's outcome. */
export interface LimitStop {
  limit: LimitKind;
  message: string;
  overshoot?: number;
}
