import { mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import * as z from 'zod';
import { defineTool, defineToolWith, toolSet } from '../src/defineTool.js';
import { fail, ok, type ToolError } from '../src/errors.js';
import { createPathJail } from '../src/jail.js';
import type { PrepareStep } from '../src/options.js';
import { createServer, ERROR_META_KEY } from '../src/server.js';

interface Project {
  id: string;
  depth: number;
}

const defineProjectTool = defineToolWith<Project>();
const describeProject = defineProjectTool({
  name: 'describe_project',
  title: 'Describe',
  description: 'Says which project the prepare step resolved.',
  input: z.object({ project: z.string().describe('Project id.') }),
  output: z.object({ id: z.string(), depth: z.number() }),
  effect: 'read',
  // No cast: `ctx.prepared` is a Project because the tool was declared with defineToolWith<Project>().
  handler: async (_input, ctx) => ok({ id: ctx.prepared.id, depth: ctx.prepared.depth }),
});
const plain = defineTool({
  name: 'plain',
  title: 'Plain',
  description: 'Reads nothing prepared.',
  input: z.object({}),
  output: z.object({ prepared: z.string() }),
  effect: 'read',
  handler: async (_input, ctx) => ok({ prepared: String(ctx.prepared) }),
});
const resolveProject: PrepareStep<Project> = (call) => {
  if (!call.readsPrepared) return ok(undefined);
  const id = call.input['project'];
  return id === 'missing'
    ? fail('NOT_FOUND', "project 'missing' was not found", { hint: 'Pass a known project.' })
    : ok({ id: String(id), depth: String(id).split('/').length });
};
async function tempDir(): Promise<string> {
  const dir = await realpath(await mkdtemp(path.join(tmpdir(), 'keel-prepared-')));
  onTestFinished(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
const errorOf = (result: { _meta?: Record<string, unknown> | undefined }) =>
  result._meta?.[ERROR_META_KEY] as ToolError | undefined;

describe("a prepare step's value reaches the handler", () => {
  it('hands what prepare returned to tools that read it, and undefined to the others', async () => {
    const server = createServer({
      name: 's',
      version: '1',
      jail: await createPathJail([]),
      ...toolSet({ tools: [describeProject, plain], prepare: resolveProject }),
    });
    expect((await server.callTool('describe_project', { project: 'apps/web' })).structuredContent).toEqual({
      id: 'apps/web',
      depth: 2,
    });
    expect((await server.callTool('plain', {})).structuredContent).toEqual({ prepared: 'undefined' });
    expect(errorOf(await server.callTool('describe_project', { project: 'missing' }))).toEqual({
      code: 'NOT_FOUND',
      message: "project 'missing' was not found",
      hint: 'Pass a known project.',
      retryable: false,
    });
  });

  it('checks at compile time that the step hands each tool what it reads', () => {
    const prepareText: PrepareStep<string> = () => ok('text');
    // @ts-expect-error a tool reading a Project does not fit a server whose step hands out strings
    toolSet({ tools: [describeProject], prepare: prepareText });
    // A tool reading nothing fits any server.
    expect(toolSet({ tools: [plain], prepare: prepareText }).tools).toEqual([plain]);
  });

  it('fails INTERNAL, naming the tool, when a tool that reads a value gets none', async () => {
    const server = createServer({
      name: 's',
      version: '1',
      jail: await createPathJail([]),
      tools: [describeProject],
      prepare: () => ok(undefined),
    });
    expect(errorOf(await server.callTool('describe_project', { project: 'a' }))).toEqual({
      code: 'INTERNAL',
      message: 'describe_project reads a prepared value, but the prepare step returned nothing for it',
      hint: 'A server defect: build the server with toolSet({ tools, prepare }) so its step serves every tool.',
      retryable: false,
    });
  });

  it("runs the step's programs under the call's time limit", async () => {
    const dir = await tempDir();
    const slow = defineProjectTool({
      ...describeProject.spec,
      name: 'slow_project',
      timeoutMs: 300,
      handler: async (_input, ctx) => ok({ id: ctx.prepared.id, depth: 0 }),
    });
    const server = createServer({
      name: 's',
      version: '1',
      jail: await createPathJail([dir]),
      tools: [slow],
      prepare: async (call) => {
        await call.run({
          command: process.execPath,
          args: ['-e', 'setTimeout(() => {}, 60_000)'],
          cwd: dir,
          timeoutMs: 120_000,
          maxOutputBytes: 1024,
        });
        return ok({ id: 'never', depth: 0 });
      },
    });
    const error = errorOf(await server.callTool('slow_project', { project: 'a' }));
    expect(error?.code).toBe('TIMEOUT');
    expect(error?.message).toBe('slow_project did not finish within 300 ms');
  });
});
