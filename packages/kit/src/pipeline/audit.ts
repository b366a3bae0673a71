import type { Span } from '@opentelemetry/api';
import type { CallToolResult } from '@modelcontextprotocol/server';
import type { AuditLog } from '../audit/auditLog.js';
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

/**
 * Audit: a mutating call appends a redacted, hash-chained row. A failed append does not take the
 * result from the caller (the effect already happened); it is loud in the log and on the span.
 */
export async function auditCall(
  log: AuditLog,
  call: AuditedCall,
  answer: { result: CallToolResult; outcome: Outcome<unknown>; replayed: boolean },
  options: { redact: RedactOptions | undefined; span: Span | undefined; logger: Logger },
): Promise<void> {
  try {
    await log.append({
      server: call.server,
      tool: call.tool,
      args: redact(call.input, options.redact),
      outcome: answer.replayed ? 'replayed' : answer.outcome.ok ? 'ok' : 'error',
      errorCode: answer.outcome.ok ? undefined : answer.outcome.error.code,
      idempotencyKey: call.idempotencyKey,
      resultSha256: sha256Hex(canonicalJson(answer.result)),
      traceId: options.span?.spanContext().traceId,
      actor: call.actor,
    });
  } catch (error) {
    options.logger.error('audit append failed', { tool: call.tool, error });
    options.span?.setAttribute('keel.audit.failed', true);
  }
}
