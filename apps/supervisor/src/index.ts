export { loadConfig, parseConfig } from './config/load.js';
export type { LoadedConfig } from './config/load.js';
export { agentRoles, configSchema, defaultLimits } from './config/schema.js';
export type {
  AgentConfig,
  AgentRole,
  KeelConfig,
  Limits,
  Loops,
  ModelConfig,
  Price,
  ServerConfig,
  SideEffects,
} from './config/schema.js';
export { loadTaskFile, parseTaskFile, taskFileSchema } from './task/taskFile.js';
export type { TaskFile } from './task/taskFile.js';
export { mergeLimits, newTaskId, runTask } from './engine/runTask.js';
export type { RunTaskOptions, TaskOutcome } from './engine/runTask.js';
export type { ProgressEvent, ProgressSink } from './engine/session.js';
export { Budget, costOf, minOutputTokens } from './limits/budget.js';
export { systemClock } from './clock.js';
export type { Clock } from './clock.js';
export { LoopDetector } from './limits/loops.js';
export { SideEffectLedger } from './limits/sideEffects.js';
export { classifyCall } from './limits/irreversible.js';
export { createSqliteTaskStore } from './store/sqliteTaskStore.js';
export { createPostgresTaskStore, migratePostgres } from './store/postgresTaskStore.js';
export { openTaskStore } from './store/openStore.js';
export { resumeTask } from './engine/runTask.js';
export type { ModelCallRecord, TaskRecord, TaskStore, ToolCallRecord } from './store/taskStore.js';
export {
  createAnthropicModel,
  createModel,
  createOpenAICompatibleModel,
  createPlaybookModel,
  createReplayModel,
  playbookSchema,
} from './models/index.js';
export type {
  Model,
  ModelMessage,
  ModelReply,
  ModelRequest,
  ModelToolCall,
  ModelToolDefinition,
  ModelUsage,
  Playbook,
} from './models/index.js';
export { inputTokenBound } from './models/tokens.js';
export { runCli } from './cli/main.js';
export type { CliIo } from './cli/cliContext.js';
export { buildTrace, formatTrace } from './observe/trace.js';
export type { TraceSpan } from './observe/trace.js';
export { computeStats, formatStats } from './observe/stats.js';
export type { StatsReport } from './observe/stats.js';
export { formatReplay, replayTask } from './replay/replay.js';
export type { ReplayOptions, ReplayReport } from './replay/replay.js';
export type { Divergence } from './replay/compare.js';
export { loadSuite } from './eval/suite.js';
export { runEval } from './eval/runEval.js';
export { formatEvalReport } from './eval/report.js';
export type { EvalReport } from './eval/report.js';
export { renderEvalHtml } from './eval/html.js';
