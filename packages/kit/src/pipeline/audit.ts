import type { Span } from '@opentelemetry/api';
import type { CallToolResult } from '@modelcontextprotocol/server';
import type { AuditEntry, AuditLog } from '../audit/auditLog.js';
import { redact, type RedactOptions } from '../audit/redact.js';
import { canonicalJson, sha256Hex } from '../canonical.js';
import type { Outcome } from '../errors.js';
import type { Logger } from '../logger.js';

export interface AuditedCall {
  server: string;
  tool: string;
  input: Record<string, unknown>;
  idempotencyKey: string | undefined;
  actor: string | undefined;
}

/** The redacted row that records what a mutating call answered or, for a run, what it did. */
export function auditEntryOf(
  call: AuditedCall,
  answer: { result: CallToolResult; outcome: Outcome<unknown>; replayed: boolean },
  options: { redact: RedactOptions | undefined; span: Span | undefined },
): AuditEntry {
  return {
    server: call.server,
    tool: call.tool,
    args: redact(call.input, options.redact),
    outcome: answer.replayed ? 'replayed' : answer.outcome.ok ? 'ok' : 'error',
    errorCode: answer.outcome.ok ? undefined : answer.outcome.error.code,
    idempotencyKey: call.idempotencyKey,
    resultSha256: sha256Hex(canonicalJson(answer.result)),
    traceId: options.span?.spanContext().traceId,
    actor: call.actor,
  };
}

/**
 * Appends a row to the hash-chained log. A failed append does not take the result from the caller
 * (the effect already happened); it is loud in the log and on the span.
 */
export async function appendAudit(
  log: AuditLog,
  entry: AuditEntry,
  options: { span: Span | undefined; logger: Logger },
): Promise<void> {
  try {
    await log.append(entry);
  } catch (error) {
    options.logger.error('audit append failed', { tool: entry.tool, error });
    options.span?.setAttribute('keel.audit.failed', true);
  }
}
