import { execFile } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { describe, expect, it, onTestFinished } from 'vitest';
import { tempDir } from '@keel/testing';
import { runCli } from '../src/cli/main.js';
import { resumeTask, runTask } from '../src/engine/runTask.js';
import { buildTrace, formatTrace, waitsOf, type TraceSpan } from '../src/observe/trace.js';
import { timeline } from '../src/observe/timeline.js';
import { createDemoProject } from '../src/cli/demoProject.js';
import { loadConfig } from '../src/config/load.js';
import { approveCall } from '../src/control/decisions.js';
import { createSqliteTaskStore } from '../src/store/sqliteTaskStore.js';
import { loadTaskFile } from '../src/task/taskFile.js';
import { systemClock } from '../src/clock.js';
import { createHarness, task } from './helpers.js';

const shape = (span: TraceSpan): unknown => [
  `${span.kind}:${span.name}:${span.outcome}`,
  ...span.children.map(shape),
];

describe('keel trace', () => {
  it('rebuilds task → agents → model calls → tool calls from the store, each inside its parent', async () => {
    const h = await createHarness({ files: { 'notes.md': 'one\n' } });
    const { run } = await runTask({
      loaded: h.loaded,
      store: h.store,
      env: {},
      task: task({
        mode: 'orchestrated',
        tests: null,
        deploy: null,
        playbook: {
          planning: [
            [
              { call: 'read_file', args: { path: 'notes.md' } },
              {
                submit: {
                  version: 'plan.v1',
                  summary: 'add a line',
                  steps: [{ id: 's1', description: 'append', files: ['notes.md'] }],
                  acceptance: ['two lines'],
                },
              },
            ],
          ],
          coding: [
            [
              { call: 'write_file', args: { path: 'notes.md', content: 'one\ntwo\n' } },
              { call: 'no_such_tool', args: {} },
              {
                submit: {
                  version: 'change.v1',
                  summary: 'two lines',
                  files: [{ path: 'notes.md', status: 'modified', linesAdded: 1, linesRemoved: 0 }],
                  commit: null,
                },
              },
            ],
          ],
          review: [[{ submit: { version: 'review.v1', verdict: 'approve', summary: 'fine', comments: [] } }]],
        },
      }),
    });
    expect(run.status).toBe('succeeded');
    const [stored, models, tools, events] = await Promise.all([
      h.store.getTask(run.id),
      h.store.listModelCalls(run.id),
      h.store.listToolCalls(run.id),
      h.store.listEvents(run.id),
    ]);
    const trace = buildTrace(stored!, models, tools, events);
    expect(shape(trace)).toEqual([
      `task:task ${run.id}:ok`,
      ['setup:setup:ok'],
      [
        'agent:invoke_agent planning:ok',
        ['chat:chat playbook:ok', ['tool:execute_tool filesystem.read_file:ok']],
        ['chat:chat playbook:ok'],
      ],
      [
        'agent:invoke_agent coding:ok',
        ['chat:chat playbook:ok', ['tool:execute_tool filesystem.write_file:ok']],
        ['chat:chat playbook:ok', ['tool:execute_tool no_such_tool:UNKNOWN_TOOL']],
        ['chat:chat playbook:ok'],
      ],
      ['agent:invoke_agent review:ok', ['chat:chat playbook:ok']],
    ]);
    expect(trace.attributes).toEqual({
      type: 'test',
      mode: 'orchestrated',
      status: 'succeeded',
      steps: 6,
      inputTokens: run.tokens.input,
      outputTokens: run.tokens.output,
      costUsd: 0,
    });
    // Every span lies inside its agent (or the task), a tool call starts after the model call that
    // asked for it (1 ms slack: event times are whole milliseconds).
    const inside = (span: TraceSpan, frame: TraceSpan) => {
      for (const child of span.children) {
        const after = span.kind === 'chat' ? span.startMs + span.durationMs - 1 : frame.startMs - 1;
        expect(child.startMs).toBeGreaterThanOrEqual(after);
        expect(child.startMs).toBeGreaterThanOrEqual(frame.startMs - 1);
        expect(child.startMs + child.durationMs).toBeLessThanOrEqual(frame.startMs + frame.durationMs + 1);
        inside(child, child.kind === 'chat' ? frame : child);
      }
    };
    inside(trace, trace);
    const chats = trace.children.flatMap((a) => a.children).filter((s) => s.kind === 'chat');
    expect(chats.map((c) => [c.attributes['step'], c.attributes['inputTokens']])).toEqual(
      models.map((m) => [m.step, m.inputTokens]),
    );
    const text = formatTrace(trace);
    expect(text.split('\n').length).toBe(1 + 1 + 1 + 3 + 1 + 3 + 1 + 2 + 2);
    expect(text).toContain('execute_tool no_such_tool  step 4 · call 1, UNKNOWN_TOOL, 0 B');
  });

  it("joins the servers' spans from an OTLP/JSON export under the tool calls that made them", async () => {
    // A stand-in for a collector's file exporter: every OTLP/JSON request body becomes one line.
    const dir = await tempDir('keel-trace-otlp-');
    const file = path.join(dir, 'spans.jsonl');
    let requests = 0;
    const collector = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        if (req.url === '/v1/traces') {
          appendFileSync(file, `${JSON.stringify(JSON.parse(body))}\n`);
          requests++;
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => collector.close(() => resolve())));
    const demo = path.join(dir, 'demo');
    await promisify(execFile)(
      process.execPath,
      [new URL('../dist/bin.js', import.meta.url).pathname, 'demo', '--dir', demo, '--quiet'],
      {
        env: {
          ...process.env,
          OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`,
          OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
          OTEL_BSP_SCHEDULE_DELAY: '50',
        },
      },
    );
    // The servers flush as the supervisor closes them: wait until every batch has arrived.
    let settled = -1;
    while (settled !== requests) {
      settled = requests;
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    let stdout = '';
    const io = {
      env: {},
      stdout: new Writable({ write: (chunk, _e, done) => ((stdout += String(chunk)), done()) }),
      stderr: new Writable({ write: (_c, _e, done) => done() }),
      cwd: demo,
      version: 'test',
      kill: new AbortController().signal,
      tracer: undefined,
      clock: systemClock,
    };
    expect(await runCli({ ...io, argv: ['node', 'keel', 'runs', '--json'] })).toBe(0);
    const id = (JSON.parse(stdout) as Array<{ id: string }>)[0]!.id;
    stdout = '';
    expect(await runCli({ ...io, argv: ['node', 'keel', 'trace', id, '--json', '--otlp', file] })).toBe(0);
    const trace = JSON.parse(stdout) as TraceSpan;
    const tools: TraceSpan[] = [];
    const walk = (span: TraceSpan) => {
      if (span.kind === 'tool') tools.push(span);
      span.children.forEach(walk);
    };
    walk(trace);
    // The demo stops at production's approval: the tests check, 18 calls through staging, then
    // production's plan.
    expect(tools.length).toBe(20);
    // Each tool call now holds the span its server made for it, named for the same tool.
    expect(
      tools.map((t) => {
        const tool = t.name.slice(t.name.indexOf('.') + 1);
        return t.children.filter((c) => c.kind === 'server' && c.name === `tools/call ${tool}`).length;
      }),
    ).toEqual(Array(20).fill(1));
    const server = tools[0]!.children[0]!;
    expect(server.attributes['service']).toBe('keel-test-runner');
    expect(server.startMs).toBeGreaterThanOrEqual(tools[0]!.startMs - 1);
    expect(server.startMs + server.durationMs).toBeLessThanOrEqual(
      tools[0]!.startMs + tools[0]!.durationMs + 1,
    );
  });
});

describe('a wait for a person in the trace', () => {
  it('timeline: linear while waits are short; past a fifth of the task, each wait is drawn at 6%', () => {
    const short = timeline(1000, [{ startMs: 400, endMs: 500 }]);
    expect([0, 400, 500, 1000].map(short)).toEqual([0, 0.4, 0.5, 1]);
    // 10 s of work around an hour's wait: the wait takes 0.06, the work the other 0.94.
    const long = timeline(3_610_000, [{ startMs: 5000, endMs: 3_605_000 }]);
    expect([0, 5000, 3_605_000, 3_610_000].map((t) => Number(long(t).toFixed(6)))).toEqual([
      0, 0.47, 0.53, 1,
    ]);
  });

  it('the demo approved an hour later: await_approval from the request to the decision, then the resume', async () => {
    const dir = await tempDir('keel-trace-wait-');
    const demo = createDemoProject(dir);
    const loaded = loadConfig(demo.config);
    const store = createSqliteTaskStore(loaded.stateDir);
    onTestFinished(() => store.close());
    // One clock for the task and the person: an hour passes between the request and the decision.
    let skew = 0;
    const clock = { now: () => Date.now() + skew };
    const first = await runTask({ loaded, task: loadTaskFile(demo.task), store, env: process.env, clock });
    expect(first.run.status).toBe('waiting');
    const [asked] = await store.listApprovals({ taskId: first.run.id, status: 'pending' });
    skew = 3_600_000;
    await approveCall(store, asked!.id, 'alice', null, clock);
    const { run } = await resumeTask({
      loaded,
      store,
      env: process.env,
      taskId: first.run.id,
      reason: 'approved',
      clock,
    });
    expect(run.status).toBe('succeeded');
    const [task, models, tools, events] = await Promise.all([
      store.getTask(run.id),
      store.listModelCalls(run.id),
      store.listToolCalls(run.id),
      store.listEvents(run.id),
    ]);
    const trace = buildTrace(task!, models, tools, events);
    const top = trace.children.map((s) => `${s.kind}:${s.name}`);
    expect(top.filter((s) => s.startsWith('wait:') || s.startsWith('setup:'))).toEqual([
      'setup:setup',
      'wait:await_approval',
      'setup:setup',
    ]);
    const wait = trace.children.find((s) => s.kind === 'wait')!;
    const at = (type: string) =>
      Date.parse(events.find((e) => e.type === type)!.at) - Date.parse(task!.createdAt);
    expect({ ...wait, children: undefined }).toEqual({
      kind: 'wait',
      name: 'await_approval',
      startMs: at('approval_requested'),
      durationMs: at('approval_granted') - at('approval_requested'),
      outcome: 'ok',
      attributes: {
        approval: asked!.id,
        kind: 'approval',
        tool: 'apply_deploy',
        decision: 'approved',
        by: 'alice',
      },
      children: undefined,
    });
    expect(wait.durationMs).toBeGreaterThanOrEqual(3_600_000);
    // Drawn at 6% of the timeline, so the rest of the task keeps 94% of it.
    const place = timeline(trace.durationMs, waitsOf(trace));
    expect(Number((place(wait.startMs + wait.durationMs) - place(wait.startMs)).toFixed(6))).toBe(0.06);
    expect(formatTrace(trace)).toContain(`await_approval  ${asked!.id} (apply_deploy): approved by alice`);
  }, 300_000);
});
