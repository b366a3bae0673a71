/**
 * The closed set of error codes a Keel tool can return. Each code carries whether a retry of the
 * same call can succeed without the caller changing anything; a tool may override that per error.
 */
export const ErrorCodes = {
  INVALID_ARGUMENT: { retryable: false },
  NOT_FOUND: { retryable: false },
  ALREADY_EXISTS: { retryable: false },
  OUTSIDE_ROOTS: { retryable: false },
  PERMISSION_DENIED: { retryable: false },
  CONFLICT: { retryable: false },
  PRECONDITION_FAILED: { retryable: false },
  IDEMPOTENCY_KEY_REUSED: { retryable: false },
  IN_PROGRESS: { retryable: true },
  TIMEOUT: { retryable: true },
  CANCELLED: { retryable: true },
  RESOURCE_LIMIT: { retryable: false },
  CONFIRMATION_REQUIRED: { retryable: false },
  /** The action needs a human's approval that the call did not carry. */
  APPROVAL_REQUIRED: { retryable: false },
  /** An approval was carried but refused (forged, expired, reused, for something else); details say which. */
  APPROVAL_REJECTED: { retryable: false },
  /** The call acts on a plan the world has moved past since it was made. */
  STALE_PLAN: { retryable: false },
  /** An interrupted effect left state the tool cannot determine by itself; a human must look. */
  UNKNOWN_STATE: { retryable: false },
  UNAVAILABLE: { retryable: true },
  INTERNAL: { retryable: false },
} as const satisfies Record<string, { retryable: boolean }>;

export type ErrorCode = keyof typeof ErrorCodes;

export const errorCodeList = Object.keys(ErrorCodes) as ErrorCode[];

/** The structured error a failed tool call carries, in `_meta` and as JSON text. */
export interface ToolError {
  code: ErrorCode;
  message: string;
  hint?: string;
  retryable: boolean;
  details?: Record<string, unknown>;
}

export interface ToolErrorInit {
  hint?: string | undefined;
  retryable?: boolean | undefined;
  details?: Record<string, unknown> | undefined;
}

/** Builds a {@link ToolError}; `retryable` defaults to what the code's table entry says. */
export function toolError(code: ErrorCode, message: string, init: ToolErrorInit = {}): ToolError {
  const error: ToolError = { code, message, retryable: init.retryable ?? ErrorCodes[code].retryable };
  if (init.hint !== undefined) error.hint = init.hint;
  if (init.details !== undefined) error.details = init.details;
  return error;
}

/**
 * An internal failure with a code from {@link ErrorCodes}. Throwing one from a handler is the same as
 * returning `{ ok: false, error }`; any other thrown value becomes INTERNAL.
 */
export class KeelError extends Error {
  override readonly name = 'KeelError';
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly retryable: boolean;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, init: ToolErrorInit & { cause?: unknown } = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = code;
    this.hint = init.hint;
    this.retryable = init.retryable ?? ErrorCodes[code].retryable;
    this.details = init.details;
  }

  toToolError(): ToolError {
    return toolError(this.code, this.message, {
      hint: this.hint,
      retryable: this.retryable,
      details: this.details,
    });
  }
}

/** An expected outcome: a value or a structured error, never an exception. */
export type Outcome<TValue> = { ok: true; value: TValue } | { ok: false; error: ToolError };

export function ok<TValue>(value: TValue): { ok: true; value: TValue } {
  return { ok: true, value };
}

export function fail(
  code: ErrorCode,
  message: string,
  init?: ToolErrorInit,
): { ok: false; error: ToolError } {
  return { ok: false, error: toolError(code, message, init) };
}

/** Turns anything thrown into a ToolError without losing the message. */
export function toToolError(thrown: unknown): ToolError {
  if (thrown instanceof KeelError) return thrown.toToolError();
  const code = (thrown as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code === 'SQLITE_LOCKED')) {
    // Several processes share the state database; one held it longer than the busy timeout.
    return toolError('UNAVAILABLE', 'the state database is busy (another server process holds its lock)', {
      hint: 'Retry the same call (with the same idempotency key, if it had one).',
    });
  }
  const message = thrown instanceof Error ? thrown.message : String(thrown);
  return toolError('INTERNAL', `internal error: ${message}`, {
    hint: 'This is a bug in the server or its environment; the server log has the stack.',
  });
}
