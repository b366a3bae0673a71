import * as z from 'zod';
import type { AnyTool } from '../defineTool.js';
import { toolError, type ToolError } from '../errors.js';
import { IDEMPOTENCY_META_KEY } from './render.js';
import { inputAlternatives, matchAlternatives } from '../inputSchema.js';

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
  if (!parsed.success) return { ok: false, error: invalidInput(tool, rawArgs, parsed.error) };
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

/**
 * Arguments that fail a union input: the mode arguments that exclude each other, or else the issues
 * of the alternative the arguments chose (a union's own issue says only "invalid input").
 */
function invalidInput(tool: AnyTool, rawArgs: unknown, error: z.ZodError): ToolError {
  const alternatives = inputAlternatives(tool.inputSchema);
  if (alternatives === undefined) return invalidArguments(tool.spec.name, error);
  const match = matchAlternatives(alternatives, rawArgs);
  if (match.conflicting.length > 0) return conflictingModes(tool.spec.name, match.conflicting, match.modes);
  const own = match.fit?.safeParse(rawArgs);
  return invalidArguments(tool.spec.name, own !== undefined && !own.success ? own.error : error);
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

/** The tool error for arguments of alternatives that exclude each other (the schema's oneOf/anyOf). */
function conflictingModes(
  tool: string,
  conflicting: readonly string[],
  modes: readonly string[][],
): ToolError {
  const named = conflicting.map((key) => `\`${key}\``);
  const choices = modes
    .filter((mode) => mode.length > 0)
    .map((mode) => mode.map((key) => `\`${key}\``).join('/'));
  return toolError(
    'INVALID_ARGUMENT',
    `invalid arguments for ${tool}: ${named.join(' and ')} cannot be used together`,
    {
      hint: `Pass the arguments of one mode only: ${choices.join(', or ')} (the input schema lists the alternatives).`,
      details: { conflicting: [...conflicting], modes: modes.map((mode) => [...mode]) },
    },
  );
}
