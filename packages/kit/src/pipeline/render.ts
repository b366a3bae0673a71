import type { CallToolResult } from '@modelcontextprotocol/server';
import * as z from 'zod';
import type { AnyTool } from '../defineTool.js';
import { toolError, type Outcome, type ToolError } from '../errors.js';

/** The `_meta` key a caller (the supervisor) puts its idempotency key under. */
export const IDEMPOTENCY_META_KEY = 'keel/idempotency-key';
/** The `_meta` key of a failed result's structured error. */
export const ERROR_META_KEY = 'keel/error';
/** The `_meta` key describing what the idempotency store did with a call. */
export const IDEMPOTENCY_RESULT_META_KEY = 'keel/idempotency';

/**
 * A result as sent, with its size for the span: a number when it was measured, else measured only
 * if a recording span asks (the transport serialises the result anyway; measuring costs another).
 */
export interface Rendered {
  result: CallToolResult;
  bytes: number | (() => number);
}

/** A failed call as MCP carries it: isError, a readable text, and the structured error in `_meta`. */
export function errorResult(error: ToolError): CallToolResult {
  const lines = [`Error [${error.code}]: ${error.message}`];
  if (error.hint !== undefined) lines.push(`Hint: ${error.hint}`);
  lines.push(`Retryable: ${error.retryable ? 'yes' : 'no'}`);
  if (error.details !== undefined) {
    const details = JSON.stringify(error.details);
    lines.push(`Details: ${details.length > 2000 ? `${details.slice(0, 2000)}…` : details}`);
  }
  // Not in structuredContent: clients validate that against the tool's output schema.
  return {
    isError: true,
    content: [{ type: 'text', text: lines.join('\n') }],
    _meta: { [ERROR_META_KEY]: error },
  };
}

/**
 * Bound and render: the value is checked against the output schema, rendered as text beside its
 * structured form, and refused with RESOURCE_LIMIT over the server's hard cap.
 */
export function renderOutcome(tool: AnyTool, outcome: Outcome<unknown>, maxResultBytes: number): Rendered {
  if (!outcome.ok) return measured(errorResult(outcome.error));
  const checked = tool.spec.output.safeParse(outcome.value);
  if (!checked.success) {
    return measured(
      errorResult(
        toolError(
          'INTERNAL',
          `${tool.spec.name} produced a result that does not match its output schema: ${z.prettifyError(checked.error)}`,
          { hint: 'This is a bug in the tool; report it with the arguments used.' },
        ),
      ),
    );
  }
  const value = checked.data as Record<string, unknown>;
  const text = tool.spec.render === undefined ? JSON.stringify(value) : tool.spec.render(value);
  const result: CallToolResult = { content: [{ type: 'text', text }], structuredContent: value };
  // Most results are far under the cap: a bound found without serialising them settles it.
  if (jsonBytesBound(result, maxResultBytes) <= maxResultBytes) return { result, bytes: measure(result) };
  const rendered = measured(result);
  if (rendered.bytes <= maxResultBytes) return rendered;
  return measured(
    errorResult(
      toolError(
        'RESOURCE_LIMIT',
        `${tool.spec.name} produced ${rendered.bytes} bytes, over the server's hard cap of ${maxResultBytes}`,
        { hint: 'Ask for less: a smaller budget argument, a narrower path or range.' },
      ),
    ),
  );
}

/** A result's size for the span, computed only if a recording span asks. */
export function measure(result: CallToolResult): () => number {
  return () => Buffer.byteLength(JSON.stringify(result));
}

export function measured(result: CallToolResult): { result: CallToolResult; bytes: number } {
  return { result, bytes: Buffer.byteLength(JSON.stringify(result)) };
}

/**
 * An upper bound on the UTF-8 bytes of `JSON.stringify(value)`, found by walking the value without
 * building the text: a string's UTF-16 unit is at most 6 bytes escaped, a number at most 24
 * characters. Infinity once past `limit`, and for what it cannot bound cheaply (a `toJSON`, very deep
 * nesting): the caller measures exactly then.
 */
export function jsonBytesBound(value: unknown, limit: number): number {
  let total = 0;
  const walk = (item: unknown, depth: number): boolean => {
    if (total > limit || depth > 64) return false;
    switch (typeof item) {
      case 'string':
        total += 2 + 6 * item.length;
        return true;
      case 'number':
        total += 24;
        return true;
      case 'boolean':
      case 'undefined':
      case 'function':
      case 'symbol':
        total += 9;
        return true;
      case 'object': {
        if (item === null) {
          total += 4;
          return true;
        }
        if ('toJSON' in item) return false;
        total += 2;
        if (Array.isArray(item)) {
          for (const element of item) {
            total += 1;
            if (!walk(element, depth + 1)) return false;
          }
          return true;
        }
        for (const key of Object.keys(item)) {
          total += 4 + 6 * key.length;
          if (!walk((item as Record<string, unknown>)[key], depth + 1)) return false;
        }
        return true;
      }
      case 'bigint':
        return false; // JSON.stringify throws on it; measuring exactly says so.
    }
  };
  return walk(value, 0) && total <= limit ? total : Number.POSITIVE_INFINITY;
}

/** A stored result read back as the outcome it recorded (for the span and the audit row of a replay). */
export function outcomeOfStored(stored: CallToolResult): Outcome<unknown> {
  if (!stored.isError) return { ok: true, value: stored.structuredContent };
  return {
    ok: false,
    error: (stored._meta?.[ERROR_META_KEY] as ToolError | undefined) ?? toolError('INTERNAL', 'stored error'),
  };
}
