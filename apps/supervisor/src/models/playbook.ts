import { z } from 'zod';
import { canonicalJson, KeelError } from '@keel/kit/core';
import type { Model, ModelMessage, ModelReply, ModelRequest, ModelToolCall } from './model.js';

const argsSchema = z.record(z.string(), z.unknown()).default({});

const conditionSchema = z
  .object({
    tool: z.string().min(1).describe('the latest result of this tool in the conversation'),
    field: z.string().optional().describe('a dotted path into its structured result; default: its text'),
    contains: z.string().optional(),
    equals: z.unknown().optional(),
    matches: z.string().optional().describe('a regular expression'),
    isError: z.boolean().optional(),
  })
  .strict();
type Condition = z.infer<typeof conditionSchema>;

export type PlaybookTurn =
  | { call: string; args: Record<string, unknown> }
  | { calls: Array<{ tool: string; args: Record<string, unknown> }> }
  | { submit: Record<string, unknown> }
  | { say: string }
  | { when: Condition; do: PlaybookTurn; otherwise: PlaybookTurn };

const turnSchema: z.ZodType<PlaybookTurn> = z.lazy(() =>
  z.union([
    z.object({ call: z.string().min(1), args: argsSchema }).strict(),
    z
      .object({ calls: z.array(z.object({ tool: z.string().min(1), args: argsSchema }).strict()).min(1) })
      .strict(),
    z.object({ submit: z.record(z.string(), z.unknown()) }).strict(),
    z.object({ say: z.string() }).strict(),
    z.object({ when: conditionSchema, do: turnSchema, otherwise: turnSchema }).strict(),
  ]),
) as z.ZodType<PlaybookTurn>;

const invocationsSchema = z.array(z.array(turnSchema).min(1)).min(1);

/**
 * The playbook: per agent, one list of turns per invocation of that agent (the second coding
 * invocation is the first rework round). A turn is one model reply: a tool call, several, a final
 * `submit` (the agent's contract), or plain text. `when` picks `do` or `otherwise` by an earlier tool result.
 * Strings may hold `{{tool.field.path}}`, replaced by that field of the tool's latest result.
 */
export const playbookSchema = z
  .object({
    planning: invocationsSchema.optional(),
    coding: invocationsSchema.optional(),
    review: invocationsSchema.optional(),
    deploy: invocationsSchema.optional(),
  })
  .strict();
export type Playbook = z.infer<typeof playbookSchema>;

type ToolMessage = Extract<ModelMessage, { role: 'tool' }>;

function latestResult(messages: readonly ModelMessage[], tool: string): ToolMessage | undefined {
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i]!;
    if (message.role === 'tool' && message.toolName === tool) return message;
  }
  return undefined;
}

function structuredOf(message: ToolMessage): unknown {
  if (message.structured !== undefined) return message.structured;
  try {
    return JSON.parse(message.content);
  } catch {
    return undefined;
  }
}

function getPath(value: unknown, dotted: string): unknown {
  let current = value;
  for (const part of dotted.split('.')) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}

function resolveRef(messages: readonly ModelMessage[], ref: string): unknown {
  const [tool, ...rest] = ref.trim().split('.');
  const message = tool === undefined ? undefined : latestResult(messages, tool);
  if (message === undefined)
    throw new KeelError(
      'NOT_FOUND',
      `playbook template {{${ref}}}: no result of '${tool}' in this conversation yet`,
    );
  const value = rest.length === 0 ? structuredOf(message) : getPath(structuredOf(message), rest.join('.'));
  if (value === undefined)
    throw new KeelError(
      'NOT_FOUND',
      `playbook template {{${ref}}}: '${rest.join('.')}' is not in the result of '${tool}'`,
    );
  return value;
}

const wholeTemplate = /^\{\{([^{}]+)\}\}$/;
const anyTemplate = /\{\{([^{}]+)\}\}/g;

function fill(value: unknown, messages: readonly ModelMessage[]): unknown {
  if (typeof value === 'string') {
    const whole = wholeTemplate.exec(value);
    if (whole) return resolveRef(messages, whole[1]!);
    return value.replace(anyTemplate, (_, ref: string) => {
      const resolved = resolveRef(messages, ref);
      return typeof resolved === 'string' ? resolved : JSON.stringify(resolved);
    });
  }
  if (Array.isArray(value)) return value.map((item) => fill(item, messages));
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fill(v, messages)]));
  return value;
}

function holds(condition: Condition, messages: readonly ModelMessage[]): boolean {
  const message = latestResult(messages, condition.tool);
  if (message === undefined) return false;
  if (condition.isError !== undefined && message.isError !== condition.isError) return false;
  const value =
    condition.field === undefined ? message.content : getPath(structuredOf(message), condition.field);
  if (condition.equals !== undefined && canonicalJson(value) !== canonicalJson(condition.equals))
    return false;
  const text = typeof value === 'string' ? value : JSON.stringify(value ?? null);
  if (condition.contains !== undefined && !text.includes(condition.contains)) return false;
  if (condition.matches !== undefined && !new RegExp(condition.matches).test(text)) return false;
  return true;
}

/** Tokens as this model reports them: a quarter of the bytes, rounded up (deterministic, like the script). */
const quarterBytes = (value: unknown) => Math.ceil(Buffer.byteLength(JSON.stringify(value)) / 4);

/**
 * A deterministic model that plays a task's script: no network, the default, so the main job runs
 * on a fresh machine. It is stateless: the turn is the number of assistant messages so far in the
 * conversation it is sent, the script is the agent's entry for this invocation. It goes through
 * the same interface, limits and records as a real model.
 */
export function createPlaybookModel(playbook: Playbook, name = 'playbook'): Model {
  return {
    provider: 'playbook',
    model: name,
    async generate(request: ModelRequest, context): Promise<ModelReply> {
      if (request.signal.aborted) throw request.signal.reason;
      const invocations = playbook[context.agent as keyof Playbook];
      const turns = invocations?.[Math.min(context.invocation, invocations.length) - 1];
      const turnIndex = request.messages.filter((m) => m.role === 'assistant').length;
      let turn: PlaybookTurn | undefined = turns?.[turnIndex];
      while (turn !== undefined && 'when' in turn)
        turn = holds(turn.when, request.messages) ? turn.do : turn.otherwise;
      const finalTool = request.tools.find((t) => t.name.startsWith('submit_'))?.name;
      let text = '';
      const toolCalls: ModelToolCall[] = [];
      const id = (n: number) => `pb_${context.step}_${n}`;
      if (turn === undefined) {
        text = `playbook: no turn ${turnIndex + 1} for ${context.agent} invocation ${context.invocation}`;
      } else if ('say' in turn) {
        text = turn.say;
      } else if ('call' in turn) {
        toolCalls.push({ id: id(0), name: turn.call, arguments: fill(turn.args, request.messages) });
      } else if ('calls' in turn) {
        turn.calls.forEach((c, n) =>
          toolCalls.push({ id: id(n), name: c.tool, arguments: fill(c.args, request.messages) }),
        );
      } else {
        if (finalTool === undefined)
          throw new KeelError('INTERNAL', `agent ${context.agent} has no submit_ tool`);
        toolCalls.push({ id: id(0), name: finalTool, arguments: fill(turn.submit, request.messages) });
      }
      const reply = { text, toolCalls };
      return {
        ...reply,
        usage: {
          inputTokens: quarterBytes({ messages: request.messages, tools: request.tools }),
          outputTokens: Math.min(request.maxTokens, quarterBytes(reply)),
        },
        finishReason: toolCalls.length > 0 ? 'tool_calls' : 'stop',
        responseModel: name,
        raw: { playbook: true, turn: turnIndex + 1, invocation: context.invocation, reply },
      };
    },
  };
}
