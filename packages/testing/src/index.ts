export { tempDir } from './tempDir.js';
export { createGitRepo, git, gitEnv } from './git.js';
export type { GitRepo } from './git.js';
export { connectHttp, connectStdio, fixtureBin, startHttpServer, toolErrorOf } from './clients.js';
export type {
  BinCommand,
  ClientKind,
  ConnectOptions,
  ElicitAnswer,
  HttpServerProcess,
  McpTestClient,
  ToolCallResult,
} from './clients.js';
export { callErr, callOk } from './calls.js';
export type { TestToolError } from './calls.js';
export { importEffects } from './sideEffects.js';
export type { ImportEffects } from './sideEffects.js';
export { startRawStdio } from './raw.js';
export type { RawMessage, RawStdioSession } from './raw.js';
