import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { describe, expect, it, onTestFinished } from 'vitest';
import { tempDir } from '@keel/testing';
import type { TaskRunV1 } from '@keel/contracts';
import { runCli } from '../src/cli/main.js';
import { percentile } from '../src/observe/stats.js';
import { createSqliteTaskStore } from '../src/store/sqliteTaskStore.js';
import type { TaskStore } from '../src/store/taskStore.js';
import { writeFile } from 'node:fs/promises';
import { systemClock } from '../src/clock.js';
import path from 'node:path';

const day = 86_400_000;
const now = Date.now();

/** A finished task `ageDays` ago that took `latencyMs`. */
async function addTask(
  store: TaskStore,
  id: string,
  f: {
    type: string;
    status: TaskRunV1['status'];
    steps: number;
    latencyMs: number;
    ageDays: number;
    tokens?: [number, number];
    /** Of the input tokens, those read from a prompt cache. */
    cached?: number;
    cost?: number;
  },
) {
  const startedAt = new Date(now - f.ageDays * day).toISOString();
  const endedAt = new Date(Date.parse(startedAt) + f.latencyMs).toISOString();
  const run: TaskRunV1 = {
    version: 'taskRun.v1',
    id,
    type: f.type,
    mode: 'orchestrated',
    startedAt,
    endedAt,
    status: f.status,
    outcome: { message: 'x' },
    steps: f.steps,
    tokens: {
      input: f.tokens?.[0] ?? 0,
      output: f.tokens?.[1] ?? 0,
      ...(f.cached === undefined ? {} : { cachedInput: f.cached }),
    },
    costUsd: f.cost ?? 0,
    approvalsAsked: 0,
    toolCalls: [],
  };
  await store.createTask({
    id,
    type: f.type,
    title: id,
    mode: 'orchestrated',
    status: 'running',
    createdAt: startedAt,
    endedAt: null,
    configHash: 'h',
    spec: {},
    startingState: null,
    run: null,
  });
  await store.updateTask(id, { status: f.status, endedAt, run });
}

function capture() {
  let text = '';
  const stream = new Writable({
    write(chunk, _enc, done) {
      text += String(chunk);
      done();
    },
  });
  return { stream, text: () => text };
}

async function fixture() {
  const dir = await tempDir('keel-stats-');
  await writeFile(
    path.join(dir, 'keel.config.yaml'),
    'version: 1\nworkspace: .\nstateDir: state\nservers: {}\nmodels: { playbook: { provider: playbook } }\nagents:\n  planning: { model: playbook, tools: {} }\n  coding: { model: playbook, tools: {} }\n  review: { model: playbook, tools: {} }\n',
  );
  const store = createSqliteTaskStore(path.join(dir, 'state'));
  // bugfix, this week: 6 tasks, 4 succeeded; steps 10,10,12,14,20,24 (mean 15); latencies 100..600;
  // costs $0.01..$0.06 (mean 0.035, population sd 0.0170783, cv 0.48795).
  const week = [
    ['succeeded', 10, 100],
    ['succeeded', 10, 200],
    ['failed', 12, 300],
    ['succeeded', 14, 400],
    ['limit', 20, 500],
    ['succeeded', 24, 600],
  ] as const;
  for (const [i, [status, steps, latencyMs]] of week.entries())
    await addTask(store, `b${i}`, {
      type: 'bugfix',
      status,
      steps,
      latencyMs,
      ageDays: 1 + i * 0.1,
      tokens: [1000, 100],
      // A quarter of the input was a cached prefix (the last task reported none).
      ...(i < 5 ? { cached: 300 } : {}),
      cost: 0.01 * (i + 1),
    });
  // bugfix, the week before: 5 tasks of 10 steps each: this week's mean 15 is a +50% jump.
  for (let i = 0; i < 5; i++)
    await addTask(store, `p${i}`, {
      type: 'bugfix',
      status: 'succeeded',
      steps: 10,
      latencyMs: 50,
      ageDays: 8 + i * 0.1,
    });
  // docs, this week: 2 tasks, none before.
  await addTask(store, 'd0', {
    type: 'docs',
    status: 'succeeded',
    steps: 3,
    latencyMs: 1000,
    ageDays: 2,
    tokens: [10, 5],
    cost: 0.5,
  });
  await addTask(store, 'd1', {
    type: 'docs',
    status: 'error',
    steps: 5,
    latencyMs: 3000,
    ageDays: 3,
    tokens: [30, 15],
    cost: 1.5,
  });
  // Not ended: a task waiting for a person's approval does not count yet.
  await addTask(store, 'w0', { type: 'docs', status: 'waiting', steps: 50, latencyMs: 1, ageDays: 1 });
  // Too old for either window.
  await addTask(store, 'old', { type: 'docs', status: 'succeeded', steps: 99, latencyMs: 9, ageDays: 40 });
  await store.close();
  return dir;
}

async function stats(dir: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const out = capture();
  const err = capture();
  const code = await runCli({
    argv: ['node', 'keel', 'stats', ...args],
    env,
    stdout: out.stream,
    stderr: err.stream,
    cwd: dir,
    version: '0.0.0-test',
    kill: new AbortController().signal,
    tracer: undefined,
    clock: systemClock,
  });
  return { code, stdout: out.text(), stderr: err.text() };
}

describe('keel stats', () => {
  it('nearest-rank percentiles', () => {
    expect(percentile([100, 200, 300, 400, 500, 600], 50)).toBe(300);
    expect(percentile([100, 200, 300, 400, 500, 600], 95)).toBe(600);
    expect(percentile([1000, 3000], 50)).toBe(1000);
    expect(percentile([], 50)).toBe(0);
  });

  it('matches hand-computed figures on a fixture store and flags the steps jump', async () => {
    const dir = await fixture();
    const { code, stdout, stderr } = await stats(dir, ['--json']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const report = JSON.parse(stdout);
    const [bugfix, docs] = report.types;
    expect(bugfix).toEqual({
      type: 'bugfix',
      tasks: 6,
      succeeded: 4,
      successRate: 4 / 6,
      meanSteps: 15,
      p50LatencyMs: 300,
      p95LatencyMs: 600,
      meanInputTokens: 1000,
      meanOutputTokens: 100,
      totalTokens: 6600,
      meanCostUsd: expect.closeTo(0.035, 12),
      totalCostUsd: expect.closeTo(0.21, 12),
      p50CostUsd: 0.03,
      p95CostUsd: 0.06,
      costCv: expect.closeTo(Math.sqrt(17.5 / 6) / 3.5, 12),
      cachedInputShare: 0.25,
      previous: expect.objectContaining({ tasks: 5, meanSteps: 10, p50LatencyMs: 50, costCv: null }),
      stepsJump: true,
    });
    expect(docs).toEqual({
      type: 'docs',
      tasks: 2,
      succeeded: 1,
      successRate: 0.5,
      meanSteps: 4,
      p50LatencyMs: 1000,
      p95LatencyMs: 3000,
      meanInputTokens: 20,
      meanOutputTokens: 10,
      totalTokens: 60,
      meanCostUsd: 1,
      totalCostUsd: 2,
      p50CostUsd: 0.5,
      p95CostUsd: 1.5,
      costCv: 0.5,
      cachedInputShare: 0,
      previous: null,
      stepsJump: false,
    });
    expect(report.all).toMatchObject({
      tasks: 8,
      succeeded: 5,
      meanSteps: 98 / 8,
      p50CostUsd: 0.04,
      p95CostUsd: 1.5,
      cachedInputShare: 1500 / 6040,
    });

    const typed = JSON.parse((await stats(dir, ['--json', '--type', 'docs', '--all'])).stdout);
    expect(typed.types.map((t: { type: string; tasks: number }) => [t.type, t.tasks])).toEqual([['docs', 3]]);
    expect(typed.previousWindow).toBe(null);

    const table = (await stats(dir, [])).stdout;
    expect(table.split('\n').slice(2, 6)).toEqual([
      'TYPE    TASKS  SUCCESS  STEPS  P50      P95      TOKENS/TASK  CACHED  COST/TASK  COST P50  COST P95  COST CV  STEPS VS PREV',
      'bugfix  6      66.7%    15.0   300 ms   600 ms   1100         25.0%   $0.0350    $0.0300   $0.0600   0.49     10.0 → 15.0  JUMP',
      'docs    2      50.0%    4.0    1000 ms  3000 ms  30           0.0%    $1.0000    $0.5000   $1.5000   0.50     -',
      'all     8      62.5%    12.3   400 ms   3000 ms  833          24.8%   $0.2762    $0.0400   $1.5000   1.76',
    ]);
    expect(table).toContain(
      'JUMP bugfix: mean steps 10.0 → 15.0 (more than +25% against the previous window)',
    );
  });

  it('exports the same figures as OTLP gauges through the OTEL_* variables', async () => {
    const dir = await fixture();
    const bodies: unknown[] = [];
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        bodies.push({ path: req.url, type: req.headers['content-type'], body: JSON.parse(body) });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    onTestFinished(() => new Promise<void>((r) => server.close(() => r())));
    const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const { code, stderr } = await stats(dir, [], { OTEL_EXPORTER_OTLP_ENDPOINT: endpoint });
    expect(code).toBe(0);
    expect(stderr).toBe(`exported as OTLP metrics to ${endpoint}/v1/metrics\n`);
    expect(bodies.length).toBe(1);
    const sent = bodies[0] as { path: string; body: any };
    expect(sent.path).toBe('/v1/metrics');
    const metrics = sent.body.resourceMetrics[0].scopeMetrics[0].metrics as Array<any>;
    const points = Object.fromEntries(
      metrics.map((m) => [
        m.name,
        Object.fromEntries(
          m.gauge.dataPoints.map((p: any) => [p.attributes[0].value.stringValue, p.asDouble ?? p.asInt]),
        ),
      ]),
    );
    expect(points).toEqual({
      'keel.tasks.count': { bugfix: 6, docs: 2 },
      'keel.tasks.success_rate': { bugfix: 4 / 6, docs: 0.5 },
      'keel.tasks.steps.mean': { bugfix: 15, docs: 4 },
      'keel.tasks.latency.p50': { bugfix: 300, docs: 1000 },
      'keel.tasks.latency.p95': { bugfix: 600, docs: 3000 },
      'keel.tasks.tokens.mean': { bugfix: 1100, docs: 30 },
      'keel.tasks.cost.mean': { bugfix: expect.closeTo(0.035, 12), docs: 1 },
      'keel.tasks.cost.p50': { bugfix: 0.03, docs: 0.5 },
      'keel.tasks.cost.p95': { bugfix: 0.06, docs: 1.5 },
      'keel.tasks.cost.cv': { bugfix: expect.closeTo(Math.sqrt(17.5 / 6) / 3.5, 12), docs: 0.5 },
      'keel.tasks.tokens.cached_share': { bugfix: 0.25, docs: 0 },
      'keel.tasks.steps.jump': { bugfix: 1, docs: 0 },
    });
  });
});
