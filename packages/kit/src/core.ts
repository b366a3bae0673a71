// The kit's dependency-free helpers, for programs that must start fast (a control CLI): importing
// this entry loads no MCP SDK, zod, SQLite or process code, unlike the root entry.
export { ErrorCodes, errorCodeList, fail, KeelError, ok, toolError, toToolError } from './errors.js';
export type { ErrorCode, Outcome, ToolError, ToolErrorInit } from './errors.js';
export { callFingerprint, canonicalJson, sha256Hex } from './canonical.js';
export { redact } from './audit/redact.js';
export type { RedactOptions } from './audit/redact.js';
export { createSilentLogger } from './logger.js';
export type { Logger } from './logger.js';
export {
  CHANGES_NO_FILES_META_KEY,
  EXPECT_PREVIEW_META_KEY,
  PREVIEW_META_KEY,
  REFUSED_PREVIEW_BINDING,
} from './previewKeys.js';
