import { expect } from 'vitest';
import { toolErrorOf, type McpTestClient, type ToolCallResult } from './clients.js';

/** The structured error a tool returns: code, message, hint, retryable, details. */
export interface TestToolError {
  code: string;
  message: string;
  hint?: string;
  retryable: boolean;
  details?: Record<string, unknown>;
}

/**
 * Calls a tool that must succeed and returns its structured result; a failure fails the test with
 * the tool's own error text. `TResult` is the caller's claim about the shape.
 */
export async function callOk<TResult = Record<string, any>>(
  client: McpTestClient,
  name: string,
  args: Record<string, unknown> = {},
  meta?: Record<string, unknown>,
): Promise<TResult> {
  const result = await client.callTool({
    name,
    arguments: args,
    ...(meta === undefined ? {} : { _meta: meta }),
  });
  if (result.isError === true) throw new Error(`${name} failed: ${result.content[0]?.text ?? ''}`);
  return result.structuredContent as TResult;
}

/** Calls a tool that must fail and returns its structured error; a success fails the test. */
export async function callErr(
  client: McpTestClient,
  name: string,
  args: Record<string, unknown> = {},
  meta?: Record<string, unknown>,
): Promise<TestToolError> {
  const result: ToolCallResult = await client.callTool({
    name,
    arguments: args,
    ...(meta === undefined ? {} : { _meta: meta }),
  });
  expect(result.isError, `${name} should fail but returned ${JSON.stringify(result.structuredContent)}`).toBe(
    true,
  );
  const error = toolErrorOf(result) as TestToolError | undefined;
  expect(error, `${name} failed without a structured error in _meta["keel/error"]`).toBeDefined();
  return error!;
}
