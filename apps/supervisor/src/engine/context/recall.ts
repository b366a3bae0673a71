import type { ModelMessage, ModelToolDefinition } from '../../models/model.js';

/** The supervisor's own tool that hands an elided result back. */
export const recallToolName = 'recall';
/** The most of a result one recall returns, in characters; the rest is paged by `offset`. */
export const recallPageChars = 16_000;

export const recallTool: ModelToolDefinition = {
  name: recallToolName,
  description:
    'Reads again a tool result that was elided to fit the context window: pass the ref its stub names. Read-only. Returns at most 16000 characters per call; continue with offset when the answer says there is more.',
  inputSchema: {
    type: 'object',
    properties: {
      ref: { type: 'string', description: 'the ref named in the stub of the elided result' },
      offset: {
        type: 'integer',
        minimum: 0,
        description: 'character offset to read from; default 0',
      },
    },
    required: ['ref'],
    additionalProperties: false,
  },
};

/** What a recall answers: the page of the result, or an error the model can act on. */
export type Recalled =
  | {
      ok: true;
      text: string;
      structured: { ref: string; tool: string; offset: number; total: number; nextOffset: number | null };
    }
  | { ok: false; error: { code: 'NOT_FOUND' | 'INVALID_ARGUMENT'; message: string; hint: string } };

/**
 * A page of an earlier tool result of this agent's conversation (`messages` as the agent holds
 * them, never compacted), by its tool call id.
 */
export function recall(messages: readonly ModelMessage[], args: unknown): Recalled {
  const a = (args ?? {}) as { ref?: unknown; offset?: unknown };
  if (typeof a.ref !== 'string' || a.ref === '')
    return {
      ok: false,
      error: {
        code: 'INVALID_ARGUMENT',
        message: 'recall needs ref: the ref a stub names',
        hint: 'call recall with {"ref":"<the ref from the stub>"}',
      },
    };
  const offset = a.offset ?? 0;
  if (typeof offset !== 'number' || !Number.isInteger(offset) || offset < 0)
    return {
      ok: false,
      error: {
        code: 'INVALID_ARGUMENT',
        message: `offset must be a whole number from 0, not ${JSON.stringify(offset)}`,
        hint: 'leave offset out to read from the start',
      },
    };
  const found = messages.find(
    (m): m is Extract<ModelMessage, { role: 'tool' }> => m.role === 'tool' && m.toolCallId === a.ref,
  );
  if (found === undefined)
    return {
      ok: false,
      error: {
        code: 'NOT_FOUND',
        message: `no earlier tool result has ref '${a.ref}'`,
        hint: 'use the ref exactly as an elided result’s stub names it',
      },
    };
  const total = found.content.length;
  if (offset > total)
    return {
      ok: false,
      error: {
        code: 'INVALID_ARGUMENT',
        message: `offset ${offset} is past the end of the result (${total} characters)`,
        hint: 'use the nextOffset the previous page gave',
      },
    };
  const end = Math.min(total, offset + recallPageChars);
  const nextOffset = end < total ? end : null;
  const page = found.content.slice(offset, end);
  return {
    ok: true,
    text:
      nextOffset === null && offset === 0
        ? page
        : `${page}\n[recall: characters ${offset}-${end} of ${total}${nextOffset === null ? '' : `; call recall with {"ref":"${a.ref}","offset":${nextOffset}} for the rest`}]`,
    structured: { ref: a.ref, tool: found.toolName, offset, total, nextOffset },
  };
}
