import type { CallToolResult, InputRequiredResult } from '@modelcontextprotocol/server';
import type { Outcome, ToolError } from '../errors.js';
import { errorResult, measure } from './render.js';

/** What a call answers: the result sent and what the span and the audit row record of it. */
export interface Answer {
  result: CallToolResult | InputRequiredResult;
  outcome: Outcome<unknown> | undefined;
  bytes: number | (() => number);
  idempotency: string;
}

/** The answer to a call refused before (or instead of) running. */
export function refusedAnswer(error: ToolError, idempotency: string): Answer {
  const result = errorResult(error);
  return { result, outcome: { ok: false, error }, bytes: measure(result), idempotency };
}
