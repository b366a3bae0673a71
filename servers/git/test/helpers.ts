import {
  connectStdio,
  tempDir,
  toolErrorOf,
  type ClientKind,
  type McpTestClient,
  type ToolCallResult,
} from '@keel/testing';
import { expect } from 'vitest';

export const binPath = new URL('../dist/bin.js', import.meta.url).pathname;

export type GitClient = McpTestClient & { stderr: () => string; pid: number | undefined };

/** Starts keel-git over stdio with the given roots and flags, and a fresh state dir unless one is given. */
export async function startGit(
  kind: ClientKind,
  roots: readonly string[],
  flags: readonly string[] = [],
  stateDir?: string,
): Promise<GitClient> {
  const state = stateDir ?? (await tempDir('keel-git-state-'));
  return await connectStdio(
    {
      command: process.execPath,
      args: [
        binPath,
        ...roots.flatMap((root) => ['--root', root]),
        '--state-dir',
        state,
        '--log-level',
        'warn',
        ...flags,
      ],
    },
    kind,
  );
}

/** Calls a tool and returns its structured result, failing the test with the error text when it failed. */
export async function callOk(
  client: McpTestClient,
  name: string,
  args: Record<string, unknown> = {},
): Promise<Record<string, any>> {
  const result = await client.callTool({ name, arguments: args });
  if (result.isError === true) throw new Error(`${name} failed: ${result.content[0]?.text ?? ''}`);
  return result.structuredContent as Record<string, any>;
}

/** Calls a tool that must fail, and returns its structured error. */
export async function callError(
  client: McpTestClient,
  name: string,
  args: Record<string, unknown> = {},
): Promise<{ code: string; message: string; hint?: string; retryable: boolean }> {
  const result: ToolCallResult = await client.callTool({ name, arguments: args });
  expect(result.isError, `${name} should fail but returned ${JSON.stringify(result.structuredContent)}`).toBe(
    true,
  );
  const error = toolErrorOf(result);
  expect(error).toBeDefined();
  return error!;
}
