import type { ApprovalGate } from '../../approvals/gate.js';
import type { Trust } from '../../approvals/trust.js';
import type { Effect, SideEffectLedger } from '../../limits/sideEffects.js';
import type { ToolResult } from '../../mcp/servers.js';
import type { ModelMessage, ModelToolCall } from '../../models/model.js';
import type { ToolSlot } from './call.js';
import { learnFacts, type TaskFacts } from './facts.js';

/** What a tool call hands back to the model, with the result it came from. */
export interface ToolAnswer {
  message: Extract<ModelMessage, { role: 'tool' }>;
  result: ToolResult | undefined;
}

export interface ObserveContext {
  workspace: string;
  /** Taints the task when an untrusted result reaches a model. */
  gate: Pick<ApprovalGate, 'taint'>;
  /** Which results are trusted: by server and tool, and only when they echo the call. */
  trust: Trust;
  ledger: Pick<SideEffectLedger, 'commit'>;
  facts: TaskFacts;
  event: (type: string, data: unknown) => Promise<void>;
  /** Told when a result may have changed the workspace, so its fingerprint is taken again. */
  workspaceChanged: () => void;
}

/**
 * Every byte a tool sends on its way to the model — a result, a tool error, a protocol error, a
 * server's APPROVAL_REQUIRED, a result handed back on resume — and what it does to the task: a
 * result the trust rule does not cover taints the task (no policy pre-approves an irreversible
 * call after it), unless only the harness reads it (`toModel: false`); a result that succeeded commits its effect to the ledger and teaches the task
 * its facts (plans, worktrees). Returns the message the model reads: the result quoted as data.
 */
export async function observe(
  ctx: ObserveContext,
  seen: Pick<ToolSlot, 'step' | 'call' | 'tool' | 'args' | 'toModel'>,
  result: ToolResult,
  effect: Effect,
): Promise<ToolAnswer> {
  if (
    seen.toModel !== false &&
    !ctx.trust.trusts(seen.tool.server, seen.tool.name, seen.args, result) &&
    ctx.gate.taint(seen.tool.name, seen.step)
  )
    await ctx.event('tainted', { tool: seen.tool.name, step: seen.step });
  if (!result.isError) {
    ctx.ledger.commit(effect);
    if (!effect.computable || effect.files.length > 0) ctx.workspaceChanged();
    learnFacts(ctx.facts, ctx.workspace, seen.tool.name, seen.args, result);
  }
  return answer(seen.call, result);
}

/** A call that threw (a JSON-RPC error: schema violation, server gone), as a tool error for the model. */
export const protocolError = (message: string): ToolResult => ({
  isError: true,
  text: '',
  structured: undefined,
  error: { code: 'MCP_ERROR', message },
  bytes: 0,
});

/** The harness's own answer to a call it refused: no tool's bytes, so nothing to observe. */
export const refusal = (
  call: ModelToolCall,
  refused: { code: string; message: string; hint: string },
): ToolAnswer =>
  toolMessage(
    call,
    'error',
    JSON.stringify({ code: refused.code, message: refused.message, hint: refused.hint }),
    true,
  );

function answer(call: ModelToolCall, result: ToolResult): ToolAnswer {
  const body = result.isError
    ? JSON.stringify({
        ...result.error,
        ...(result.text && result.error?.message !== result.text ? { text: result.text } : {}),
      })
    : result.text;
  return toolMessage(call, result.isError ? 'error' : 'ok', body, result.isError, result);
}

const resultBlock = (tool: string, status: string, body: string) =>
  `<tool_result tool="${tool}" status="${status}">\n${body.replaceAll('</tool_result', '<\\/tool_result')}\n</tool_result>`;

const toolMessage = (
  call: ModelToolCall,
  status: string,
  body: string,
  isError: boolean,
  result?: ToolResult,
): ToolAnswer => ({
  message: {
    role: 'tool',
    toolCallId: call.id,
    toolName: call.name,
    content: resultBlock(call.name, status, body),
    isError,
    ...(result?.structured === undefined ? {} : { structured: result.structured }),
  },
  result,
});
