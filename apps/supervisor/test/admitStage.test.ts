import { describe, expect, it, onTestFinished } from 'vitest';
import { tempDir } from '@keel/testing';
import { ApprovalGate } from '../src/approvals/gate.js';
import { defaultLimits, type Loops } from '../src/config/schema.js';
import { admit, type AdmitContext } from '../src/engine/stages/admit.js';
import { escalate } from '../src/engine/stages/escalate.js';
import { createRecorder } from '../src/engine/stages/record.js';
import { done } from '../src/engine/stop.js';
import { Budget } from '../src/limits/budget.js';
import { LoopDetector } from '../src/limits/loops.js';
import type { CatalogTool } from '../src/mcp/servers.js';
import { createSqliteTaskStore } from '../src/store/sqliteTaskStore.js';
import { ownerWriter } from './helpers.js';

const onFenced = () => undefined;
const start = Date.parse('2026-12-01T09:00:00Z');
const step = 4;

const tool = (server: string, name: string): CatalogTool => ({
  server,
  name,
  description: '',
  inputSchema: {},
  annotations: {},
});
const readFile = tool('filesystem', 'read_file');
const writeFile = tool('filesystem', 'write_file');
const gitPush = tool('git', 'git_push');
const catalog = new Map([readFile, writeFile, gitPush].map((t) => [t.name, t]));
const coding = { role: 'coding', scope: new Map([readFile, writeFile].map((t) => [t.name, t])) };

/**
 * Admission over a real budget, loop detector and store (kill requests, escalations); escalating
 * limits and loops, and continuing them, as the session does.
 */
async function setup(options: { toolCalls?: number; onLoop?: Loops['onLoop'] } = {}) {
  const store = createSqliteTaskStore(await tempDir('keel-admit-'));
  const writer = await ownerWriter(store, 't-1');
  onTestFinished(() => store.close());
  const clock = { now: () => start };
  const budget = new Budget({ ...defaultLimits, toolCalls: options.toolCalls ?? 10 }, clock);
  const onLoop = options.onLoop ?? 'stop';
  const loops = new LoopDetector({ repeat: 3, pingPong: 3, noProgressSteps: 10, onLoop });
  const recorder = createRecorder({ writer, taskId: 't-1', resume: undefined, clock, onFenced });
  const gate = new ApprovalGate({
    store,
    writer,
    onFenced,
    taskId: 't-1',
    config: { expiresHours: 24, preApproved: [], trustedTools: [] },
    signer: undefined,
    clock,
  });
  const escalation = {
    store,
    writer,
    onFenced,
    taskId: 't-1',
    clock,
    escalateLimits: [],
    gate,
    budget,
    event: (type: string, data: unknown) => recorder.event(type, data),
  };
  const ctx: AdmitContext = {
    killed: () => store.killRequested('t-1'),
    abortStop: () => ({ status: 'killed', message: 'the task was killed' }),
    budget,
    escalate: async (stop) => {
      const continued = await escalate(escalation, stop, step);
      if (!continued.ok) return continued;
      loops.reset();
      return done(true);
    },
    loops,
    onLoop,
    catalog,
  };
  return { store, budget, ctx };
}

const call = (name: string, args: unknown) => ({ id: `c-${name}`, name, arguments: args });

describe('admission', () => {
  it("refuses a tool nobody has, a tool outside the agent's scope and arguments that are no JSON object, each after its reservation", async () => {
    const { ctx, budget } = await setup();
    const hint = 'use one of: read_file, write_file';
    expect(await admit(ctx, coding, call('rm_rf', {}))).toEqual({
      kind: 'refused',
      refusal: { code: 'UNKNOWN_TOOL', message: "there is no tool named 'rm_rf'", hint },
    });
    expect(await admit(ctx, coding, call('git_push', {}))).toEqual({
      kind: 'refused',
      refusal: {
        code: 'OUT_OF_SCOPE',
        message: "'git_push' (server git) is not among the coding agent's tools",
        hint,
      },
    });
    for (const args of [null, ['a.txt'], 'a.txt'])
      expect(await admit(ctx, coding, call('read_file', args))).toEqual({
        kind: 'refused',
        refusal: {
          code: 'INVALID_ARGUMENT',
          message: 'the arguments of read_file are not a JSON object',
          hint: 'send the arguments as one JSON object matching the tool schema',
        },
      });
    expect(await admit(ctx, coding, call('read_file', { path: 'a.txt' }))).toEqual({
      kind: 'call',
      tool: readFile,
      args: { path: 'a.txt' },
    });
    expect(budget.used.toolCalls).toBe(6);
  });

  it('stops a task killed through the store before it reserves anything', async () => {
    const { ctx, store, budget } = await setup();
    await store.requestKill('t-1', new Date(start));
    expect(await admit(ctx, coding, call('read_file', { path: 'a.txt' }))).toEqual({
      kind: 'stopped',
      stop: { status: 'killed', message: 'the task was killed' },
    });
    expect(budget.used.toolCalls).toBe(0);
  });

  it('stops at the tool-call limit before it looks at the tool', async () => {
    const { ctx } = await setup({ toolCalls: 1 });
    expect((await admit(ctx, coding, call('read_file', { path: 'a.txt' }))).kind).toBe('call');
    expect(await admit(ctx, coding, call('rm_rf', {}))).toEqual({
      kind: 'stopped',
      stop: { status: 'limit', limit: 'tool_calls', message: 'tool-call limit of 1 reached' },
    });
  });

  it('stops the third same call in a row where policy stops loops', async () => {
    const { ctx } = await setup({ onLoop: 'stop' });
    const read = call('read_file', { path: 'a.txt' });
    expect((await admit(ctx, coding, read)).kind).toBe('call');
    expect((await admit(ctx, coding, read)).kind).toBe('call');
    expect(await admit(ctx, coding, read)).toEqual({
      kind: 'stopped',
      stop: {
        status: 'limit',
        loop: 'repeat',
        message: 'loop detected: the same call (read_file) 3 times in a row',
      },
    });
  });

  it('escalates the loop where policy escalates, and admits the call once a human continued', async () => {
    const { ctx, store } = await setup({ onLoop: 'escalate' });
    const read = call('read_file', { path: 'a.txt' });
    await admit(ctx, coding, read);
    await admit(ctx, coding, read);
    const asked = await admit(ctx, coding, read);
    const [approval] = await store.listApprovals({ taskId: 't-1' });
    expect(asked).toEqual({
      kind: 'stopped',
      stop: {
        status: 'escalated',
        loop: 'repeat',
        message: `loop detected: the same call (read_file) 3 times in a row; a human should look at the task before it goes on — escalated as ${approval!.id}: keel continue ${approval!.id} [--raise LIMIT=N] [--hint TEXT], or keel abort ${approval!.id}`,
      },
    });
    expect(approval?.tool).toBe('escalation:repeat');
    await store.decideApproval(approval!.id, {
      approve: true,
      by: 'alice',
      reason: null,
      now: new Date(start + 60_000),
    });
    expect(await admit(ctx, coding, read)).toEqual({ kind: 'call', tool: readFile, args: { path: 'a.txt' } });
    // The continue started the history again from that call: one more of it is no loop yet.
    expect((await admit(ctx, coding, read)).kind).toBe('call');
  });
});
