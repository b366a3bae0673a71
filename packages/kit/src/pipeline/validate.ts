import * as z from 'zod';
import type { AnyTool } from '../defineTool.js';
import { toolError, type ToolError } from '../errors.js';
import { IDEMPOTENCY_META_KEY } from './render.js';

export type Validated =
  | { ok: true; input: Record<string, unknown>; idempotencyKey: string | undefined }
  | { ok: false; error: ToolError };

/**
 * Validate: the arguments against the input schema, and the idempotency key of a mutating tool from
 * `_meta` or the argument the kit added. A schema violation is a tool error (SEP-1303), so the model
 * sees the issues and can correct its call.
 */
export function validateArguments(
  tool: AnyTool,
  rawArgs: unknown,
  meta: Readonly<Record<string, unknown>> | undefined,
): Validated {
  const parsed = tool.inputSchema.safeParse(rawArgs);
  if (!parsed.success) return { ok: false, error: invalidArguments(tool.spec.name, parsed.error) };
  const data = parsed.data as Record<string, unknown> & { idempotencyKey?: string };
  if (tool.spec.effect === 'read') return { ok: true, input: data, idempotencyKey: undefined };
  const { idempotencyKey: argKey, ...input } = data;
  const metaKey = meta?.[IDEMPOTENCY_META_KEY];
  if (typeof metaKey === 'string' && argKey !== undefined && metaKey !== argKey) {
    return {
      ok: false,
      error: toolError(
        'INVALID_ARGUMENT',
        'two different idempotency keys were sent (in _meta and in the idempotencyKey argument)',
        { hint: 'Send the key once: the argument or _meta["keel/idempotency-key"].' },
      ),
    };
  }
  return {
    ok: true,
    input,
    idempotencyKey: typeof metaKey === 'string' && metaKey.length > 0 ? metaKey : argKey,
  };
}

/** The tool error for arguments that fail the input schema: every issue, by path, and a hint. */
function invalidArguments(tool: string, error: z.ZodError): ToolError {
  const issues = error.issues.map((issue) => ({ path: issue.path.map(String), message: issue.message }));
  const fields = [...new Set(issues.map((issue) => issue.path.join('.') || '(arguments)'))];
  return toolError('INVALID_ARGUMENT', `invalid arguments for ${tool}: ${z.prettifyError(error)}`, {
    hint: `Fix ${fields.join(', ')} to match the tool's input schema (tools/list shows it) and call again.`,
    details: { issues },
  });
}
