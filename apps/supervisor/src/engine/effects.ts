import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { diffLines } from 'diff';
import type { Effect } from '../limits/sideEffects.js';
import { noEffect } from '../limits/sideEffects.js';
import type { CatalogTool, ConnectedServer, ToolResult } from '../mcp/servers.js';

const walkCap = 10_000;

/** git tools that leave the working tree as it is. */
const gitTreeNeutral = new Set([
  'git_add',
  'git_commit',
  'git_branch_create',
  'git_tag',
  'git_fetch',
  'git_push',
  'git_init',
]);

export interface EffectInput {
  server: ConnectedServer;
  tool: CatalogTool;
  args: Record<string, unknown>;
  workspace: string;
  /** Runs the same tool with `dryRun: true` (for tools that have one). */
  dryRun: (args: Record<string, unknown>) => Promise<ToolResult>;
}

const countLines = (text: string) =>
  text === '' ? 0 : text.split('\n').length - (text.endsWith('\n') ? 1 : 0);

/** Counts `+`/`-` lines of a unified diff per file (headers excluded). */
export function unifiedDiffEffect(
  patch: string,
): Array<{ path: string; linesAdded: number; linesRemoved: number }> {
  const files: Array<{ path: string; linesAdded: number; linesRemoved: number }> = [];
  let current: { path: string; linesAdded: number; linesRemoved: number } | undefined;
  let oldPath: string | undefined;
  for (const line of patch.split('\n')) {
    if (line.startsWith('--- ')) {
      oldPath = line.slice(4).replace(/^a\//, '').split('\t')[0];
      continue;
    }
    if (line.startsWith('+++ ')) {
      const newPath = line.slice(4).replace(/^b\//, '').split('\t')[0]!;
      const target = newPath === '/dev/null' ? oldPath! : newPath;
      current = { path: target, linesAdded: 0, linesRemoved: 0 };
      files.push(current);
      if (oldPath !== undefined && oldPath !== '/dev/null' && oldPath !== target)
        files.push({ path: oldPath, linesAdded: 0, linesRemoved: 0 });
      continue;
    }
    if (current === undefined) continue;
    if (line.startsWith('+')) current.linesAdded++;
    else if (line.startsWith('-')) current.linesRemoved++;
  }
  return files;
}

function inWorkspace(workspace: string, p: unknown): string | undefined {
  if (typeof p !== 'string' || p.includes('\0')) return undefined;
  const relative = path.relative(workspace, path.resolve(workspace, p));
  if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative)) return undefined;
  return relative.split(path.sep).join('/');
}

function filesUnder(workspace: string, relative: string): Array<{ path: string; lines: number }> | undefined {
  const out: Array<{ path: string; lines: number }> = [];
  const visit = (rel: string): boolean => {
    const abs = path.join(workspace, rel);
    const stat = lstatSync(abs, { throwIfNoEntry: false });
    if (stat === undefined) return true;
    if (stat.isDirectory()) {
      for (const entry of readdirSync(abs)) if (!visit(`${rel}/${entry}`)) return false;
      return true;
    }
    if (out.length >= walkCap) return false;
    out.push({
      path: rel,
      lines: stat.isFile() && stat.size < 8 * 1024 * 1024 ? countLines(readFileSync(abs, 'utf8')) : 0,
    });
    return true;
  };
  return visit(relative) ? out : undefined;
}

/**
 * A mutating call's effect on the workspace before it runs: from its arguments (write, patch),
 * a dry run of the same tool (edit), or the files it would remove or move. Anything else is
 * uncomputable, which the side-effect caps treat as crossing.
 */
export async function computeEffect(input: EffectInput): Promise<Effect> {
  const { server, tool, args } = input;
  if (tool.annotations.readOnlyHint === true) return noEffect;
  switch (server.kind) {
    case 'test-runner':
    case 'deploy':
      return noEffect;
    case 'git':
      if (gitTreeNeutral.has(tool.name)) return noEffect;
      if (tool.name === 'git_restore' && args['mode'] === 'unstage') return noEffect;
      return {
        computable: false,
        reason: `${tool.name} changes the working tree in ways its arguments do not show`,
      };
    case 'filesystem':
      return filesystemEffect(input);
    case 'external':
      return {
        computable: false,
        reason: `${tool.name} is a tool of an external server that is not read-only`,
      };
  }
}

async function filesystemEffect({ tool, args, workspace, dryRun }: EffectInput): Promise<Effect> {
  const outside = (p: unknown): Effect => ({
    computable: false,
    reason: `'${String(p)}' is not inside the workspace`,
  });
  switch (tool.name) {
    case 'create_directory':
      return noEffect;
    case 'write_file': {
      const rel = inWorkspace(workspace, args['path']);
      if (rel === undefined) return outside(args['path']);
      const before = lstatSync(path.join(workspace, rel), { throwIfNoEntry: false })?.isFile()
        ? readFileSync(path.join(workspace, rel), 'utf8')
        : '';
      let linesAdded = 0;
      let linesRemoved = 0;
      for (const part of diffLines(before, typeof args['content'] === 'string' ? args['content'] : '')) {
        if (part.added) linesAdded += part.count ?? 0;
        else if (part.removed) linesRemoved += part.count ?? 0;
      }
      return {
        computable: true,
        files: linesAdded + linesRemoved === 0 ? [] : [{ path: rel, linesAdded, linesRemoved }],
      };
    }
    case 'edit_file': {
      const rel = inWorkspace(workspace, args['path']);
      if (rel === undefined) return outside(args['path']);
      const preview = await dryRun({ ...args, dryRun: true });
      const diff = preview.structured?.['diff'];
      if (preview.isError || typeof diff !== 'string')
        // The real call will fail the same way; no file changes.
        return noEffect;
      const [file] = unifiedDiffEffect(diff);
      return { computable: true, files: file === undefined ? [] : [{ ...file, path: rel }] };
    }
    case 'apply_patch': {
      if (typeof args['patch'] !== 'string') return noEffect;
      const files = unifiedDiffEffect(args['patch']);
      const mapped = [];
      for (const file of files) {
        const rel = inWorkspace(workspace, file.path);
        if (rel === undefined) return outside(file.path);
        mapped.push({ ...file, path: rel });
      }
      return { computable: true, files: mapped };
    }
    case 'delete': {
      const rel = inWorkspace(workspace, args['path']);
      if (rel === undefined) return outside(args['path']);
      const files = filesUnder(workspace, rel);
      if (files === undefined)
        return { computable: false, reason: `more than ${walkCap} files under ${rel}` };
      return {
        computable: true,
        files: files.map((f) => ({ path: f.path, linesAdded: 0, linesRemoved: f.lines })),
      };
    }
    case 'move': {
      const from = inWorkspace(workspace, args['source']);
      const to = inWorkspace(workspace, args['destination']);
      if (from === undefined) return outside(args['source']);
      if (to === undefined) return outside(args['destination']);
      const files = filesUnder(workspace, from);
      if (files === undefined)
        return { computable: false, reason: `more than ${walkCap} files under ${from}` };
      return {
        computable: true,
        files: files.flatMap((f) => [
          { path: f.path, linesAdded: 0, linesRemoved: 0 },
          { path: to + f.path.slice(from.length), linesAdded: 0, linesRemoved: 0 },
        ]),
      };
    }
    default:
      return { computable: false, reason: `no effect model for filesystem tool ${tool.name}` };
  }
}
