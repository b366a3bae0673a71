// The shapes of the console API's answers (src/console/views.ts on the server), as the pages read them.

export interface RunRow {
  id: string;
  title: string;
  type: string;
  mode: string;
  status: string;
  agent: string | null;
  steps: number;
  tokens: { input: number; output: number };
  costUsd: number;
  toolCalls: number;
  durationMs: number;
  outcome: string | null;
  createdAt: string;
  endedAt: string | null;
}

export interface TraceSpan {
  kind: string;
  name: string;
  startMs: number;
  durationMs: number;
  outcome: string;
  attributes: Record<string, string | number | boolean>;
  children: TraceSpan[];
}

export interface Bounded {
  text: string;
  bytes: number;
  truncated: boolean;
}

export interface EventRecord {
  seq: number;
  at: string;
  type: string;
  data: unknown;
  hash: string;
}

export interface Approval {
  id: string;
  taskId: string;
  taskTitle?: string;
  kind: 'tool' | 'escalation';
  status: string;
  agent: string;
  step: number;
  server: string | null;
  tool: string | null;
  argsSha256: string | null;
  arguments: unknown;
  reasons: string[];
  summary: string;
  requestedAt: string;
  expiresAt: string;
  decidedAt: string | null;
  decidedBy: string | null;
  decisionReason: string | null;
  plan?: string | null;
}

export interface ModelCall {
  id: number;
  step: number;
  agent: string;
  provider: string;
  requestedModel: string;
  responseModel: string | null;
  systemSha256: string;
  inputTokens: number;
  outputTokens: number;
  reservedInputTokens: number;
  reservedOutputTokens: number;
  costUsd: number;
  latencyMs: number;
  startedAt: string;
  error: string | null;
  purged: boolean;
}

export interface ModelCallFull extends Omit<ModelCall, 'purged'> {
  request: Bounded;
  raw: Bounded;
  reply: Bounded;
}

export interface ToolCall {
  id: number;
  step: number;
  callIndex: number;
  agent: string;
  server: string;
  tool: string;
  idempotencyKey: string | null;
  arguments: Bounded | null;
  result: Bounded | null;
  resultBytes: number;
  latencyMs: number;
  outcome: string;
  errorCode: string | null;
  irreversible: boolean;
  effect: unknown;
  startedAt: string;
}

export interface RunDetail {
  row: RunRow;
  spec: unknown;
  startingState: unknown;
  trace: TraceSpan;
  limits: Array<{ limit: string; used: number; cap: number | null }>;
  contracts: Array<{ at: string; agent: string; contract: string; value: unknown }>;
  modelCalls: ModelCall[];
  toolCalls: ToolCall[];
  events: EventRecord[];
  approvals: Approval[];
  resuming: string[] | null;
}

export interface GroupStats {
  tasks: number;
  succeeded: number;
  successRate: number;
  meanSteps: number;
  p50LatencyMs: number;
  p95LatencyMs: number;
  meanInputTokens: number;
  meanOutputTokens: number;
  totalTokens: number;
  meanCostUsd: number;
  totalCostUsd: number;
  p50CostUsd: number;
  p95CostUsd: number;
  costCv: number | null;
  cachedInputShare: number;
}

/** `keel stats` as JSON (src/observe/stats.ts). */
export interface StatsReport {
  window: { since: string | null; until: string };
  previousWindow: { since: string; until: string } | null;
  jumpThreshold: number;
  types: Array<GroupStats & { type: string; previous: GroupStats | null; stepsJump: boolean }>;
  all: GroupStats;
}

export interface ConsoleState {
  globalStop: { by: string; at: string } | null;
  resuming: string[];
}

/** A line of /api/evals: an eval under the state dir, or why its report cannot be read. */
export type EvalEntry =
  | {
      id: string;
      writtenAt: string;
      suite: string;
      seed: number;
      repeat: number;
      runs: number;
      configurations: Array<{ configuration: string; runs: number; passRate: number }>;
    }
  | { id: string; writtenAt: string; error: { code: string; message: string; hint: string } };

export interface EvalConfiguration {
  configuration: string;
  runs: number;
  passed: number;
  passRate: number;
  p50LatencyMs: number;
  p95LatencyMs: number;
  meanSteps: number;
  meanTokens: number;
  meanCostUsd: number;
  totalCostUsd: number;
  approvalsAsked: number;
  meanReviewRounds: number;
  meanReworkRounds: number;
  limitStops: number;
}

export interface EvalRun {
  task: string;
  configuration: string;
  repetition: number;
  seed: number;
  taskId: string;
  status: string;
  limit?: string;
  checks: Record<string, boolean | undefined>;
  passed: boolean;
  latencyMs: number;
  steps: number;
  tokens: number;
  costUsd: number;
  reviewRounds: number;
  reworkRounds: number;
  approvalsAsked: number;
}

/** report.json as `keel eval` wrote it (src/eval/report.ts). */
export interface EvalReport {
  suite: string;
  seed: number;
  repeat: number;
  configurations: EvalConfiguration[];
  runs: EvalRun[];
}
