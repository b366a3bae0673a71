import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  connectStdio,
  tempDir,
  toolErrorOf,
  type BinCommand,
  type ClientKind,
  type McpTestClient,
  type ToolCallResult,
} from '@keel/testing';
import { expect } from 'vitest';

export const binPath = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'bin.js');

/** The built bin with these roots and flags, and a state dir of its own. */
export async function fsBin(roots: readonly string[], flags: readonly string[] = []): Promise<BinCommand> {
  const state = await tempDir('keel-fs-state-');
  return {
    command: process.execPath,
    args: [
      binPath,
      ...roots.flatMap((root) => ['--root', root]),
      '--state-dir',
      state,
      '--log-level',
      'error',
      ...flags,
    ],
  };
}

export type Client = McpTestClient & { stderr: () => string; pid: number | undefined };

/** A client connected to a fresh server over stdio. */
export async function connect(
  roots: readonly string[],
  kind: ClientKind = 'v2',
  flags: readonly string[] = [],
): Promise<Client> {
  return await connectStdio(await fsBin(roots, flags), kind);
}

/** Calls a tool that must succeed; returns its structured result. */
export async function callOk<T = Record<string, unknown>>(
  client: McpTestClient,
  name: string,
  args: Record<string, unknown>,
): Promise<T> {
  const result = await client.callTool({ name, arguments: args });
  if (result.isError === true) throw new Error(`${name} failed: ${result.content[0]?.text ?? ''}`);
  return result.structuredContent as T;
}

/** Calls a tool that must fail; returns its structured error. */
export async function callErr(
  client: McpTestClient,
  name: string,
  args: Record<string, unknown>,
): Promise<{ code: string; message: string; hint?: string }> {
  const result: ToolCallResult = await client.callTool({ name, arguments: args });
  expect(result.isError, `${name} should fail: ${JSON.stringify(result.structuredContent)}`).toBe(true);
  const error = toolErrorOf(result);
  expect(error).toBeDefined();
  return error!;
}

export const kinds: ClientKind[] = ['v2', 'v1'];
