export { ErrorCodes, errorCodeList, fail, KeelError, ok, toolError, toToolError } from './errors.js';
export type { ErrorCode, Outcome, ToolError, ToolErrorInit } from './errors.js';
export { annotationsFor, defineTool, defineToolWith, idempotencyKeyArg, toolSet } from './defineTool.js';
export type {
  AnyInputSchema,
  AnyObjectSchema,
  AnyTool,
  PathDeclaration,
  PathMode,
  ResolvedPathsOf,
  Reconciled,
  ToolAnnotationsOf,
  KeyClaim,
  ToolContext,
  ToolEffect,
  ToolSet,
  ToolSpec,
} from './defineTool.js';
export {
  createServer,
  errorResult,
  ERROR_META_KEY,
  IDEMPOTENCY_META_KEY,
  IDEMPOTENCY_RESULT_META_KEY,
} from './server.js';
export type {
  CallOptions,
  CreateServerOptions,
  IdempotencyOptions,
  KeelServer,
  ServerLimits,
} from './server.js';
export type { PreparedCall, PrepareStep } from './options.js';
export {
  budgetArg,
  countLines,
  createHeadTailBuffer,
  cursorArg,
  sliceList,
  sliceText,
  truncationSchema,
} from './bounds.js';
export type { CappedText, HeadTailBuffer, ListSlice, TextSlice, Truncation } from './bounds.js';
export { createCursorCodec } from './cursor.js';
export type { CursorBinding, CursorCodec } from './cursor.js';
export { callFingerprint, canonicalJson, sha256Hex } from './canonical.js';
export { createSqliteIdempotencyStore } from './idempotency/sqliteStore.js';
export { ownerIsGone, processStartTime } from './idempotency/owner.js';
export type { ClaimRequest, ClaimResult, IdempotencyRecord, IdempotencyStore } from './idempotency/store.js';
export { createAuditLog } from './audit/auditLog.js';
export type { AuditEntry, AuditLog, AuditRow, AuditVerification, SqliteAuditLog } from './audit/auditLog.js';
export { redact } from './audit/redact.js';
export type { RedactOptions } from './audit/redact.js';
export { createPathJail, OWN_FILES_HINT, ownFileDenied } from './jail.js';
export {
  CHANGES_NO_FILES_META_KEY,
  effectChanges,
  effectFileSchema,
  effectPreviewSchema,
  EXPECT_PREVIEW_META_KEY,
  PREVIEW_META_KEY,
  previewBinding,
  previewResultSchema,
  REFUSED_PREVIEW_BINDING,
} from './preview.js';
export type {
  EffectChange,
  EffectFile,
  EffectPreview,
  PlannedEffect,
  PlannedFile,
  ToolPlan,
} from './preview.js';
export type { PathJail, PathJailOptions, ResolvedPath } from './jail.js';
export { defaultEnvAllowlist, runProcess } from './process.js';
export type { ProcessResult, RunProcessOptions } from './process.js';
export { createSandbox, sandboxHome, sandboxModes } from './sandbox.js';
export type {
  Sandbox,
  SandboxMode,
  SandboxOptions,
  SandboxRun,
  SandboxStatus,
  WrappedRun,
} from './sandbox.js';
export { contextFromMeta, endToolSpan, SpanAttributes, startToolSpan } from './telemetry.js';
export { createLogger, createSilentLogger, logLevels } from './logger.js';
export type { Logger, LogLevel } from './logger.js';
export { defaultStateDir, enableWal, openStateDatabase } from './stateDir.js';
export { kitDefaults } from './defaults.js';
export { packageVersion } from './packageVersion.js';
export { createProcessGroups } from './processGroups.js';
export { kitCrashPointFrom, kitCrashPoints, noKitCrashPoint, parseCrashAt } from './crashPoint.js';
export type { KitCrashPoint, KitCrashPointName } from './crashPoint.js';
export type { ProcessGroups } from './processGroups.js';
export type { CallRunOptions } from './process.js';
export { createRequestStateSealer, defaultQuestionTtlMs } from './ask.js';
export type { AskContext, Asked, AskRefusal, Question, RequestStateSealer } from './ask.js';
export type { StateDatabase, StateDir } from './stateDir.js';
export { createSqliteStateStore } from './state/stateStore.js';
export type {
  SqliteStateStoreOptions,
  StateCommitResult,
  StateConflict,
  StateEntry,
  StateOp,
  StatePutResult,
  StateStore,
  StateWriteOptions,
} from './state/stateStore.js';
export { isPostgresUrl, redactUrl } from './backend/backend.js';
export type { StoreBackend } from './backend/backend.js';
export { sqliteBackend } from './backend/sqliteBackend.js';
export { openStoreBackend } from './backend/open.js';
