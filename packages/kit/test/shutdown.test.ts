import { mkdtemp, readFile, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as z from 'zod';
import { defineTool } from '../src/defineTool.js';
import { ok, type ToolError } from '../src/errors.js';
import { createPathJail, type PathJail } from '../src/jail.js';
import { createServer, ERROR_META_KEY } from '../src/server.js';

let dir: string;
let jail: PathJail;
beforeEach(async () => {
  dir = await realpath(await mkdtemp(path.join(tmpdir(), 'keel-shutdown-')));
  jail = await createPathJail([dir]);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const errorOf = (result: { _meta?: Record<string, unknown> | undefined }) =>
  result._meta?.[ERROR_META_KEY] as ToolError | undefined;

/** Running, as opposed to gone or a zombie nobody has reaped yet. */
async function isRunning(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  return stat !== undefined && stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
}

// A child that ignores SIGTERM and starts a grandchild in its group, then sleeps: only SIGKILL to
// the group ends both.
const stubborn = `
const { spawn } = require('node:child_process');
process.on('SIGTERM', () => {});
const grandchild = spawn(process.execPath, ['-e', 'process.on("SIGTERM", () => {}); setInterval(() => {}, 1000)'], { stdio: 'ignore' });
console.log(JSON.stringify({ child: process.pid, grandchild: grandchild.pid }));
setInterval(() => {}, 1000);
`;

function stubbornTool(pids: { child?: number; grandchild?: number }) {
  return defineTool({
    name: 'hold',
    title: 'Hold',
    description: 'Runs a child that ignores SIGTERM.',
    input: z.object({}),
    output: z.object({ exitCode: z.number().nullable() }),
    effect: 'read',
    handler: async (_input, ctx) => {
      const result = await ctx.run({
        command: process.execPath,
        args: ['-e', stubborn],
        cwd: dir,
        timeoutMs: 600_000,
        maxOutputBytes: 4096,
        onStdout: (chunk) => Object.assign(pids, JSON.parse(chunk.toString())),
      });
      return ok({ exitCode: result.exitCode });
    },
  });
}

describe('close() cancels calls in flight and kills their process groups', () => {
  it('answers CANCELLED and leaves no child or grandchild running', async () => {
    const pids: { child?: number; grandchild?: number } = {};
    const server = createServer({ name: 'shutdown', version: '0', jail, tools: [stubbornTool(pids)] });
    const call = server.callTool('hold', {});
    while (pids.grandchild === undefined) await sleep(20);
    // The event under test: both processes run when the server closes.
    expect(await isRunning(pids.child!)).toBe(true);
    expect(await isRunning(pids.grandchild)).toBe(true);

    await server.close({ graceMs: 200 });
    const result = await call;
    expect(errorOf(result)?.code).toBe('CANCELLED');
    // SIGKILL is delivered at once, but the kernel takes a moment to end a process: wait, bounded.
    for (let i = 0; i < 100 && ((await isRunning(pids.child!)) || (await isRunning(pids.grandchild))); i++)
      await sleep(20);
    expect(await isRunning(pids.child!)).toBe(false);
    expect(await isRunning(pids.grandchild)).toBe(false);

    const after = await server.callTool('hold', {});
    expect(errorOf(after)).toMatchObject({ code: 'UNAVAILABLE', retryable: true });
  });
});

describe('ctx.run reports cancellation and timeout itself', () => {
  const runner = (onTimeout?: 'result') =>
    defineTool({
      name: 'nap',
      title: 'Nap',
      description: 'Sleeps in a child.',
      input: z.object({ timeoutMs: z.number() }),
      output: z.object({ timedOut: z.boolean() }),
      effect: 'read',
      handler: async (input, ctx) => {
        const result = await ctx.run({
          command: process.execPath,
          args: ['-e', 'setTimeout(() => {}, 60_000)'],
          cwd: dir,
          timeoutMs: input.timeoutMs,
          maxOutputBytes: 1024,
          ...(onTimeout === undefined ? {} : { onTimeout }),
        });
        return ok({ timedOut: result.timedOut });
      },
    });

  it('throws TIMEOUT with a hint when the run outlives its own limit', async () => {
    const server = createServer({ name: 't', version: '0', jail, tools: [runner()] });
    const error = errorOf(await server.callTool('nap', { timeoutMs: 100 }));
    expect(error).toMatchObject({
      code: 'TIMEOUT',
      message: 'node -e did not finish within 100 ms',
      hint: 'Narrow the request (fewer files, a smaller range) or raise the timeout.',
    });
    await server.close();
  });

  it("returns the run with onTimeout: 'result'", async () => {
    const server = createServer({ name: 't', version: '0', jail, tools: [runner('result')] });
    expect((await server.callTool('nap', { timeoutMs: 100 })).structuredContent).toEqual({ timedOut: true });
    await server.close();
  });

  it("answers the client's cancel as CANCELLED", async () => {
    const server = createServer({ name: 't', version: '0', jail, tools: [runner('result')] });
    const controller = new AbortController();
    const call = server.callTool('nap', { timeoutMs: 60_000 }, { signal: controller.signal });
    await sleep(100);
    controller.abort();
    expect(errorOf(await call)?.code).toBe('CANCELLED');
    await server.close();
  });
});
