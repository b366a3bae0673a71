import { expect } from 'vitest';
import type { Run } from './world.js';

/** The run stopped at a side-effect cap before the call went out (a limit no human was asked to lift). */
export function expectStoppedAtCap(run: Run, tool: string, limit: string): void {
  expect({ status: run.status, limit: run.outcome.limit }).toEqual({ status: 'limit', limit });
  expect(run.toolCalls.filter((c) => c.tool === tool).map((c) => c.outcome)).toEqual([]);
}

/** The run succeeded without a human, every call it made succeeded. */
export function expectSucceeded(run: Run): void {
  expect({
    status: run.status,
    calls: run.toolCalls.map((c) => `${c.tool}:${c.outcome}`).filter((c) => !c.endsWith(':ok')),
  }).toEqual({ status: 'succeeded', calls: [] });
}
