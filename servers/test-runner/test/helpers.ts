import { cp, symlink } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectStdio, tempDir, type ClientKind, type McpTestClient, type ToolCallResult } from '@keel/testing';
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
  call(tool: string, args?: Record<string, unknown>, options?: Parameters<McpTestClient['callTool']>[1]): Promise<ToolCallResult>;
  /** Calls and expects success; returns the structured result. */
  ok(tool: string, args?: Record<string, unknown>): Promise<Record<string, unknown>>;
}

export async function startServer(root: string, kind: ClientKind, extraArgs: string[] = []): Promise<Server> {
  const stateDir = await tempDir('keel-tr-state-');
  const client = await connectStdio(
    { command: process.execPath, args: [binPath, '--root', root, '--state-dir', stateDir, '--log-level', 'warn', ...extraArgs] },
    kind,
  );
  const call: Server['call'] = (tool, args = {}, options) => client.callTool({ name: tool, arguments: args }, { timeout: 120_000, ...options });
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
