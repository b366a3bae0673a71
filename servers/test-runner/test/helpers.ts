import { cp, readdir, readlink, symlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  connectStdio,
  tempDir,
  type ClientKind,
  type McpTestClient,
  type ToolCallResult,
} from '@keel/testing';
import { expect } from 'vitest';

const packageDir = fileURLToPath(new URL('..', import.meta.url));
export const binPath = path.join(packageDir, 'dist', 'bin.js');
const fixturesDir = path.join(packageDir, 'test', 'fixtures');

/**
 * A fresh copy of a fixture project in a temp dir. JS fixtures get a `node_modules` link to this
 * package's, so they resolve jest/mocha/vitest the way an installed project would.
 */
export async function copyFixture(name: string, into?: string): Promise<string> {
  const dir = into ?? (await tempDir(`keel-tr-${name}-`));
  await cp(path.join(fixturesDir, name), dir, { recursive: true });
  if (['vitest', 'jest', 'mocha', 'node-test'].includes(name)) {
    await symlink(path.join(packageDir, 'node_modules'), path.join(dir, 'node_modules'));
  }
  return dir;
}

export interface Server {
  client: McpTestClient;
  stateDir: string;
  call(
    tool: string,
    args?: Record<string, unknown>,
    options?: Parameters<McpTestClient['callTool']>[1],
  ): Promise<ToolCallResult>;
  /** Calls and expects success; returns the structured result. */
  ok(tool: string, args?: Record<string, unknown>): Promise<Record<string, unknown>>;
}

export async function startServer(root: string, kind: ClientKind, extraArgs: string[] = []): Promise<Server> {
  const stateDir = await tempDir('keel-tr-state-');
  const client = await connectStdio(
    {
      command: process.execPath,
      args: [binPath, '--root', root, '--state-dir', stateDir, '--log-level', 'warn', ...extraArgs],
    },
    kind,
  );
  const call: Server['call'] = (tool, args = {}, options) =>
    client.callTool({ name: tool, arguments: args }, { timeout: 120_000, ...options });
  return {
    client,
    stateDir,
    call,
    async ok(tool, args = {}) {
      const result = await call(tool, args);
      if (result.isError) expect.fail(`${tool} failed: ${result.content[0]?.text}`);
      return result.structuredContent!;
    },
  };
}

/** Pids of live processes whose working directory is `dir` or below it (Linux /proc). */
export async function processesIn(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cwd = await readlink(`/proc/${entry}/cwd`).catch(() => undefined);
    if (cwd !== undefined && (cwd === dir || cwd.startsWith(`${dir}/`))) pids.push(Number(entry));
  }
  return pids;
}

/** Waits (bounded) for every process working in `dir` to be gone; returns the ones still there. */
export async function settledProcessesIn(dir: string): Promise<number[]> {
  let left = await processesIn(dir);
  for (let i = 0; i < 100 && left.length > 0; i++) {
    await sleep(50);
    left = await processesIn(dir);
  }
  return left;
}
