import { realpathSync } from 'node:fs';
import type { Context } from '@opentelemetry/api';
import { EXPECT_PREVIEW_META_KEY, PREVIEW_META_KEY, REFUSED_PREVIEW_BINDING } from '@keel/kit';
import { noEffect, type Effect, type SideEffectLedger } from '../../limits/sideEffects.js';
import type { CatalogTool, ConnectedServer } from '../../mcp/servers.js';
import { computeEffect } from '../effects.js';
import { done, type Step } from '../stop.js';
import type { Escalate } from './reserve.js';
import { callOptions, traceMeta, type CallBounds } from './send.js';

export interface EffectContext {
  /** The workspace's real path, which the servers' previews are relative to. */
  workspaceReal: string;
  /** The task's side-effect caps and what it changed so far. */
  ledger: Pick<SideEffectLedger, 'check'>;
  /** Bounds the dry run a tool is asked for, like any call of the task. */
  bounds: CallBounds;
  escalate: Escalate;
  event: (type: string, data: unknown) => Promise<void>;
}

/** The workspace as the servers see it, links resolved (itself when it cannot be resolved: no server started there). */
export function realWorkspace(workspace: string): string {
  try {
    return realpathSync(workspace);
  } catch {
    return workspace;
  }
}

/** What binds the real call to the preview its effect was sized on: the server refuses it if the state moved. */
export const expectPreviewMeta = (effect: Effect): Record<string, string> =>
  effect.preview !== undefined
    ? { [EXPECT_PREVIEW_META_KEY]: effect.preview.binding }
    : effect.computable && effect.refused === true
      ? { [EXPECT_PREVIEW_META_KEY]: REFUSED_PREVIEW_BINDING }
      : {};

/**
 * The call's effect on the workspace, before it runs, against the side-effect caps: a read-only
 * tool has none; a call that would cross a cap waits for a human where policy escalates, and
 * stops the task otherwise.
 */
export async function sizeEffect(
  ctx: EffectContext,
  server: ConnectedServer,
  tool: CatalogTool,
  args: Record<string, unknown>,
  parent: Context,
): Promise<Step<Effect>> {
  if (tool.annotations.readOnlyHint === true) return done(noEffect);
  const effect = await computeEffect({
    server,
    tool,
    args,
    workspaceReal: ctx.workspaceReal,
    preview: (previewArgs) =>
      server.call(
        tool.name,
        previewArgs,
        callOptions(ctx.bounds, { ...traceMeta(parent), [PREVIEW_META_KEY]: true }),
      ),
  });
  const crossing = ctx.ledger.check(tool.name, effect);
  if (crossing !== undefined) {
    await ctx.event('side_effect_cap', { tool: tool.name, args, effect, ...crossing });
    const escalation = await ctx.escalate({
      status: 'limit',
      limit: crossing.limit,
      message: crossing.message,
    });
    if (!escalation.ok) return escalation;
  }
  return done(effect);
}
