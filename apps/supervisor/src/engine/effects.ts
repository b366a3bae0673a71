import path from 'node:path';
import { effectPreviewSchema, type EffectPreview } from '@keel/kit';
import type { Effect, EffectFileChange } from '../limits/sideEffects.js';
import { noEffect } from '../limits/sideEffects.js';
import type { CatalogTool, ConnectedServer, ToolResult } from '../mcp/servers.js';

export interface EffectInput {
  server: ConnectedServer;
  tool: CatalogTool;
  args: Record<string, unknown>;
  /** The workspace's real path: the servers report real paths, links already followed. */
  workspaceReal: string;
  /** The same call with `_meta["keel/preview"]`: the server answers what it would change, changing nothing. */
  preview: (args: Record<string, unknown>) => Promise<ToolResult>;
}

/** A real path as a workspace-relative one (`/` separators), or undefined when it lies outside. */
export function workspacePath(workspaceReal: string, real: string): string | undefined {
  const relative = path.relative(workspaceReal, real);
  if (
    relative === '' ||
    relative === '..' ||
    relative.startsWith(`..${path.sep}`) ||
    path.isAbsolute(relative)
  )
    return undefined;
  return relative.split(path.sep).join('/');
}

/**
 * The files a preview changes, workspace-relative: a rename counts its source too (it is removed),
 * a copy only its destination. Undefined names the first path outside the workspace.
 */
export function previewFiles(
  workspaceReal: string,
  preview: EffectPreview,
): { ok: true; files: EffectFileChange[] } | { ok: false; outside: string } {
  const files: EffectFileChange[] = [];
  for (const file of preview.files) {
    const target = workspacePath(workspaceReal, file.path);
    if (target === undefined) return { ok: false, outside: file.path };
    files.push({
      path: target,
      linesAdded: file.linesAdded,
      linesRemoved: file.linesRemoved,
      ...(file.directory === true ? { directory: true } : {}),
    });
    if (file.change === 'rename' && file.from !== undefined) {
      const source = workspacePath(workspaceReal, file.from);
      if (source === undefined) return { ok: false, outside: file.from };
      files.push({ path: source, linesAdded: 0, linesRemoved: 0 });
    }
  }
  return { ok: true, files };
}

/**
 * A mutating call's effect on the workspace before it runs, as the server that would apply it
 * predicts it (`keel/preview`): the supervisor parses no patch and follows no link itself. Test
 * runs and deploys are outside the file caps; a mutating tool without a preview has an unknown
 * effect, which the caps treat as crossing.
 */
export async function computeEffect(input: EffectInput): Promise<Effect> {
  const { server, tool, args } = input;
  if (tool.annotations.readOnlyHint === true) return noEffect;
  if (server.kind === 'test-runner' || server.kind === 'deploy') return noEffect;
  // Declared empty by the server that applies it, which holds every real call to that: no preview.
  if (tool.changesNoFiles === true) return noEffect;
  if (tool.preview !== true)
    return {
      computable: false,
      reason:
        server.kind === 'external'
          ? `${tool.name} is a tool of an external server that is not read-only and cannot preview its effect`
          : `${tool.name} cannot preview its effect`,
    };
  let answer: ToolResult;
  try {
    answer = await input.preview(args);
  } catch (error) {
    return { computable: false, reason: `the preview of ${tool.name} failed: ${(error as Error).message}` };
  }
  // A plan that fails answers the error the call would give: the call changes nothing, and is sent
  // bound to that (refused by its server if its plan would hold by then: an effect nobody sized).
  if (answer.isError) return { computable: true, files: [], refused: true };
  const parsed = effectPreviewSchema.safeParse(answer.structured?.['preview']);
  if (!parsed.success)
    return { computable: false, reason: `${tool.name} answered its preview with no valid effect` };
  const preview = parsed.data as EffectPreview;
  if (!preview.complete)
    return {
      computable: false,
      reason: `the preview of ${tool.name} is not the whole effect (${preview.reason ?? 'no reason given'})`,
      preview,
    };
  const mapped = previewFiles(input.workspaceReal, preview);
  if (!mapped.ok)
    return { computable: false, reason: `'${mapped.outside}' is not inside the workspace`, preview };
  return { computable: true, files: mapped.files, preview };
}
