import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { startScriptedChatServer } from '@keel/testing/chat-server';
import {
  createSqliteTaskStore,
  loadConfig,
  parseTaskFile,
  replayTask,
  runCli,
  runTask,
} from '@keel/supervisor';
import { below, processes, running } from '../procs.mjs';
import { median } from '../stats.mjs';

const fixtureBin = fileURLToPath(
  new URL('../../node_modules/@keel/testing/dist/fixture/bin.js', import.meta.url),
);

/** A workspace with a config whose one server is the kit's fixture server (its `echo` is the trivial tool). */
function setup(workDir, name, extra = {}) {
  const dir = path.join(workDir, name);
  const ws = path.join(dir, 'ws');
  mkdirSync(ws, { recursive: true });
  writeFileSync(path.join(ws, 'README.md'), '# bench\n');
  const config = {
    version: 1,
    workspace: 'ws',
    stateDir: 'state',
    servers: {
      fixture: {
        command: process.execPath,
        args: [fixtureBin, '--root', '.', '--state-dir', '../state/fixture', '--log-level', 'error'],
      },
    },
    models: { playbook: { provider: 'playbook' }, ...extra.models },
    prices: extra.prices ?? {},
    agents: {
      planning: { model: 'playbook', tools: { fixture: ['echo'] } },
      coding: { model: extra.codingModel ?? 'playbook', tools: { fixture: ['echo'] } },
      review: { model: 'playbook', tools: { fixture: ['echo'] } },
    },
    loops: { repeat: 1000, pingPong: 1000, noProgressSteps: 1000, onLoop: 'stop' },
  };
  writeFileSync(path.join(dir, 'keel.config.json'), JSON.stringify(config));
  const loaded = loadConfig(path.join(dir, 'keel.config.json'));
  return { loaded, store: createSqliteTaskStore(loaded.stateDir) };
}

const submit = {
  submit: { version: 'change.v1', summary: 'nothing', files: [], commit: null },
};

/**
 * Orchestration overhead per step: the time of an agent's steps minus the model's and the tools'
 * own time (from the records), with the playbook model and a trivial tool, over 50-step tasks.
 */
async function overheadPerStep({ log, workDir }) {
  const steps = 50;
  const runs = 12;
  const { loaded, store } = setup(workDir, 'overhead');
  const turns = [
    ...Array.from({ length: steps - 1 }, (_, i) => ({ call: 'echo', args: { text: `step ${i}` } })),
    submit,
  ];
  const task = parseTaskFile(
    {
      type: 'bench',
      title: 'overhead',
      description: 'echo',
      mode: 'single',
      tests: null,
      deploy: null,
      playbook: { coding: [turns] },
    },
    'bench',
  );
  const perStep = [];
  const toolMs = [];
  for (let r = 0; r < runs; r++) {
    let first;
    let last;
    const { run } = await runTask({
      loaded,
      task,
      store,
      env: process.env,
      progress: (event) => {
        const now = performance.now();
        if (event.kind === 'agent') first ??= now;
        if (event.kind === 'model') last = now;
      },
    });
    if (run.status !== 'succeeded' || run.steps !== steps)
      throw new Error(`overhead run ended ${run.status} after ${run.steps} steps`);
    const models = await store.listModelCalls(run.id);
    const tools = await store.listToolCalls(run.id);
    const modelMs = models.reduce((n, c) => n + c.latencyMs, 0);
    const toolSum = tools.reduce((n, c) => n + c.latencyMs, 0);
    // From the agent's start to the last model call's return: every step in it is whole.
    const overhead = (last - first - modelMs - toolSum) / steps;
    // The first two runs warm the JIT and the servers' caches.
    if (r >= 2) {
      perStep.push(overhead);
      toolMs.push(toolSum / tools.length);
    }
  }
  await store.close();
  const keel = median(perStep);
  log(`overhead per step: ${perStep.map((v) => v.toFixed(3)).join(' ')} ms`);
  return [
    {
      name: `orchestration overhead per step (${steps}-step tasks, playbook + echo)`,
      keel,
      reference: median(toolMs),
      unit: 'ms',
      ratio: keel / median(toolMs),
      target: 'keel < 2 ms',
      note: `keel = a step's time minus its model and tool time (median of ${runs - 2} tasks); reference = the echo tool call itself over stdio`,
    },
  ];
}

/** A seeded PRNG, so a bench run can be repeated exactly. */
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A model that reports random usage within what was reserved (input ≤ the engine's bound, output ≤
 * max_tokens) and asks for 0–3 echo calls, never handing in: only a limit ends its tasks.
 */
function randomUsageModel(random, bounds) {
  return {
    provider: 'bench',
    model: 'random-usage',
    async generate(request, context) {
      const input = Math.floor(random() * bounds(request));
      const output = Math.floor(random() * (request.maxTokens + 1));
      const calls = Math.floor(random() * 4);
      return {
        text: '',
        toolCalls: Array.from({ length: calls }, (_, i) => ({
          id: `c${context.step}-${i}`,
          name: 'echo',
          arguments: { text: `${context.step}-${i}-${random()}` },
        })),
        usage: { inputTokens: input, outputTokens: output },
        finishReason: calls > 0 ? 'tool_calls' : 'stop',
        responseModel: 'random-usage',
        raw: null,
      };
    },
  };
}

/** 1,000 scripted runs under random limits with random usage within each reservation: 0 overshoot. */
async function limitOvershoot({ log, workDir }) {
  const { inputTokenBound } = await import('@keel/supervisor');
  const runs = Number(process.env.KEEL_BENCH_LIMIT_RUNS ?? 1000);
  const random = mulberry32(20261130);
  const { loaded, store } = setup(workDir, 'limits', {
    models: {
      random: { provider: 'openai-compatible', model: 'random-usage', baseURL: 'http://127.0.0.1:9/v1' },
    },
    prices: { 'random-usage': { inputPerMTok: 3, outputPerMTok: 15 } },
    codingModel: 'random',
  });
  const model = randomUsageModel(random, (request) => inputTokenBound(request) + 1);
  let overshoots = 0;
  const stops = {};
  const started = performance.now();
  for (let r = 0; r < runs; r++) {
    const limits = {
      steps: 1 + Math.floor(random() * 12),
      tokens: 4000 + Math.floor(random() * 60_000),
      toolCalls: 1 + Math.floor(random() * 20),
      costUsd: Number((0.005 + random() * 0.3).toFixed(4)),
      wallClockMs: 60_000,
    };
    const task = parseTaskFile(
      {
        type: 'bench',
        title: 'limits',
        description: 'random',
        mode: 'single',
        tests: null,
        deploy: null,
        limits,
      },
      'bench',
    );
    const { run } = await runTask({ loaded, task, store, env: process.env, models: { random: model } });
    const tokens = run.tokens.input + run.tokens.output;
    if (
      tokens > limits.tokens ||
      run.costUsd > limits.costUsd + 1e-12 ||
      run.steps > limits.steps ||
      run.toolCalls.length > limits.toolCalls
    )
      overshoots++;
    const kind = run.outcome.limit ?? run.status;
    stops[kind] = (stops[kind] ?? 0) + 1;
    if ((r + 1) % 100 === 0) log(`limits: ${r + 1}/${runs} runs, ${overshoots} overshoot(s)`);
  }
  await store.close();
  const seconds = (performance.now() - started) / 1000;
  return [
    {
      name: `limit overshoots over ${runs} runs, random usage within reservations`,
      keel: overshoots,
      reference: runs,
      unit: 'runs',
      ratio: overshoots / runs,
      target: '0 overshoot',
      note: `stops by kind: ${JSON.stringify(stops)}; ${seconds.toFixed(0)} s`,
    },
  ];
}

const keelBin = fileURLToPath(new URL('dist/bin.js', import.meta.resolve('@keel/supervisor/package.json')));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function startKeel(args, cwd) {
  const child = spawn(process.execPath, [keelBin, ...args], {
    cwd,
    env: { ...process.env, KEEL_CONFIG: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.resume();
  const exited = new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout })));
  return { child, pid: child.pid, exited };
}

/**
 * `keel kill --all` with 20 (or `tasks`) `keel run` processes, each inside a long tool call (a test that sleeps
 * ten minutes, run by the test-runner server): the time from the command's start until every task
 * is recorded stopped and every process that was below the keel processes (servers, test runners in
 * their own process groups, the sleeping tests) has left /proc.
 */
export async function killAllLatency({ log, workDir }, { tasks = 20, name = 'kill' } = {}) {
  const dir = path.join(workDir, name);
  const ws = path.join(dir, 'ws');
  mkdirSync(path.join(ws, 'test'), { recursive: true });
  writeFileSync(
    path.join(ws, 'package.json'),
    JSON.stringify({ name: 'sleepy', private: true, type: 'module', scripts: { test: 'node --test' } }),
  );
  writeFileSync(
    path.join(ws, 'test', 'sleep.test.mjs'),
    "import { test } from 'node:test';\ntest('sleeps', async () => { await new Promise((r) => setTimeout(r, 600_000)); });\n",
  );
  const tools = { tests: ['run_tests'] };
  writeFileSync(
    path.join(dir, 'keel.config.json'),
    JSON.stringify({
      version: 1,
      workspace: 'ws',
      stateDir: 'state',
      servers: { tests: { builtin: 'test-runner', args: ['--root', '.'] } },
      agents: {
        planning: { model: 'playbook', tools },
        coding: { model: 'playbook', tools },
        review: { model: 'playbook', tools },
      },
    }),
  );
  writeFileSync(
    path.join(dir, 'sleep.task.json'),
    JSON.stringify({
      type: 'sleep',
      title: 'Run the sleeping test',
      description: 'Run the tests.',
      mode: 'single',
      tests: null,
      deploy: null,
      playbook: {
        coding: [
          [
            { call: 'run_tests', args: { fresh: true } },
            { submit: { version: 'change.v1', summary: 'nothing', files: [], commit: null } },
          ],
        ],
      },
    }),
  );
  const keels = Array.from({ length: tasks }, () =>
    startKeel(['run', 'sleep.task.json', '--quiet', '--config', 'keel.config.json'], dir),
  );
  let trees;
  for (;;) {
    const all = processes();
    trees = keels.map((k) => below(k.pid, all));
    if (trees.every((tree) => tree.some((p) => p.cmdline.includes('sleep.test.mjs')))) break;
    if (keels.some((k) => k.child.exitCode !== null))
      throw new Error('a keel run ended before its test slept');
    await sleep(50);
  }
  log(`${tasks} tasks inside their test runs, ${trees.flat().length} processes below them; killing`);
  const watched = [
    ...keels.map((k) => ({ pid: k.pid, startTime: processes().find((p) => p.pid === k.pid)?.startTime })),
    ...trees.flat(),
  ];
  const store = createSqliteTaskStore(path.join(dir, 'state'));
  const started = performance.now();
  const kill = startKeel(['kill', '--all', '--as', 'bench', '--config', 'keel.config.json'], dir);
  let killMs;
  void kill.exited.then(() => (killMs = performance.now() - started));
  let stoppedMs;
  let goneMs;
  while (stoppedMs === undefined || goneMs === undefined) {
    if (goneMs === undefined && !watched.some(running)) goneMs = performance.now() - started;
    if (stoppedMs === undefined) {
      const open = await store.listTasks({ status: 'running', limit: 100 });
      if (open.length === 0 && (await store.listTasks({ status: 'killed', limit: 100 })).length === tasks)
        stoppedMs = performance.now() - started;
    }
    await sleep(5);
  }
  const { code, stdout } = await kill.exited;
  await Promise.all(keels.map((k) => k.exited));
  await store.setGlobalStop(null);
  await store.close();
  if (code !== 0) throw new Error(`keel kill --all exited ${code}: ${stdout}`);
  const forced = stdout.split('\n').filter((line) => line.includes('did not answer')).length;
  // Each task's time from the command's own clock: from its kill request to its end, start-up excluded.
  const perTask = [...stdout.matchAll(/, (\d+) ms\)$/gm)].map((m) => Number(m[1]));
  const keel = Math.max(stoppedMs, goneMs);
  log(
    `kill --all: tasks stopped ${stoppedMs.toFixed(0)} ms, processes gone ${goneMs.toFixed(0)} ms, the command ${killMs.toFixed(0)} ms`,
  );
  return [
    {
      name: `kill --all of ${tasks} tasks inside long tool calls: until every task stopped and every tool process gone`,
      keel,
      reference: 1000,
      unit: 'ms',
      ratio: keel / 1000,
      target: '< 1 s',
      note: `keel kill --all itself took ${killMs.toFixed(0)} ms (node start-up included); tasks recorded killed at ${stoppedMs.toFixed(0)} ms, ${watched.length} processes gone at ${goneMs.toFixed(0)} ms; per task from its kill request (start-up excluded): median ${median(perTask).toFixed(0)} ms, max ${Math.max(...perTask)} ms; ${forced} of ${tasks} owners force-killed after the 500 ms ack bound; reference = the 1 s target`,
    },
  ];
}

/**
 * `keel stats` (in process: config, store, query, figures; the default 7-day window and the one
 * before) over 100,000 recorded tasks of 5 types spread over 14 days, each with a 10-call run record.
 */
async function statsOver100k({ log, workDir }) {
  const tasks = 100_000;
  const { store } = setup(workDir, 'stats');
  const random = mulberry32(42);
  const types = ['bugfix', 'feature', 'docs', 'refactor', 'deps'];
  const statuses = ['succeeded', 'succeeded', 'succeeded', 'failed', 'limit'];
  const now = Date.now();
  const started = performance.now();
  for (let i = 0; i < tasks; i++) {
    const startedAt = new Date(now - random() * 14 * 86_400_000).toISOString();
    const endedAt = new Date(Date.parse(startedAt) + 1000 + random() * 60_000).toISOString();
    const status = statuses[i % statuses.length];
    const steps = 5 + Math.floor(random() * 40);
    await store.createTask({
      id: `t-${String(i).padStart(6, '0')}`,
      type: types[i % types.length],
      title: 'bench',
      mode: 'orchestrated',
      status,
      createdAt: startedAt,
      endedAt,
      configHash: 'bench',
      spec: { type: types[i % types.length] },
      startingState: null,
      run: {
        version: 'taskRun.v1',
        id: `t-${i}`,
        type: types[i % types.length],
        mode: 'orchestrated',
        startedAt,
        endedAt,
        status,
        outcome: { message: 'bench' },
        steps,
        tokens: { input: steps * 4000, output: steps * 60 },
        costUsd: steps * 0.002,
        approvalsAsked: 0,
        toolCalls: Array.from({ length: 10 }, () => ({
          server: 'fixture',
          tool: 'echo',
          latencyMs: 3,
          ok: true,
          irreversible: false,
        })),
      },
    });
    if ((i + 1) % 20_000 === 0) log(`stats: ${i + 1} tasks recorded`);
  }
  await store.close();
  log(`stats: recorded ${tasks} tasks in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  const sink = () =>
    new Writable({
      write(_chunk, _encoding, done) {
        done();
      },
    });
  const once = async () => {
    const t0 = performance.now();
    const code = await runCli({
      argv: ['node', 'keel', 'stats', '--json', '-c', path.join(workDir, 'stats', 'keel.config.json')],
      env: {},
      stdout: sink(),
      stderr: sink(),
      cwd: workDir,
      version: 'bench',
      kill: new AbortController().signal,
      tracer: undefined,
    });
    if (code !== 0) throw new Error(`keel stats exited ${code}`);
    return performance.now() - t0;
  };
  const first = await once();
  const times = [];
  for (let r = 0; r < 5; r++) times.push(await once());
  return [
    {
      name: `keel stats over ${tasks} recorded tasks (7-day window and the one before)`,
      keel: median(times),
      reference: 1000,
      unit: 'ms',
      ratio: median(times) / 1000,
      target: '< 1000 ms',
      note: `median of 5 runs; the first (cold) run took ${first.toFixed(0)} ms`,
    },
  ];
}

/**
 * `keel replay` of a 50-step task against the original run: the original's agent talks to the
 * scripted chat server (OpenAI-compatible adapter) answering each step after a fixed model
 * latency, with the fixture server's `echo` as the tool and a git workspace (replay starts from
 * its recorded HEAD); the replay answers from the records and must still run every tool.
 */
async function replayVersusOriginal({ log, workDir }) {
  const steps = 50;
  const modelLatencyMs = 200;
  const dir = path.join(workDir, 'replay');
  const ws = path.join(dir, 'ws');
  mkdirSync(ws, { recursive: true });
  writeFileSync(path.join(ws, 'README.md'), '# bench\n');
  const git = (...args) => execFileSync('git', args, { cwd: ws, stdio: 'ignore' });
  git('init', '--quiet');
  git(
    '-c',
    'user.name=bench',
    '-c',
    'user.email=bench@keel.invalid',
    'commit',
    '--quiet',
    '--allow-empty',
    '-m',
    'start',
  );
  const script = [
    ...Array.from({ length: steps - 1 }, (_, i) => ({
      toolCalls: [{ name: 'echo', arguments: { text: `step ${i}` } }],
      usage: { inputTokens: 2000 + 50 * i, outputTokens: 30 },
      delayMs: modelLatencyMs,
    })),
    {
      toolCalls: [
        {
          name: 'submit_change',
          arguments: { version: 'change.v1', summary: 'nothing', files: [], commit: null },
        },
      ],
      usage: { inputTokens: 4500, outputTokens: 40 },
      delayMs: modelLatencyMs,
    },
  ];
  const chat = await startScriptedChatServer({ script });
  const config = {
    version: 1,
    workspace: 'ws',
    stateDir: 'state',
    servers: {
      fixture: {
        command: process.execPath,
        args: [fixtureBin, '--root', '.', '--log-level', 'error'],
      },
      git: { builtin: 'git', args: ['--root', '.'] },
    },
    models: { chat: { provider: 'openai-compatible', model: 'bench-model', baseURL: chat.url } },
    prices: { 'bench-model': { inputPerMTok: 1, outputPerMTok: 4 } },
    agents: {
      planning: { model: 'chat', tools: { fixture: ['echo'] } },
      coding: { model: 'chat', tools: { fixture: ['echo'] } },
      review: { model: 'chat', tools: { fixture: ['echo'] } },
    },
    limits: { steps: 60, toolCalls: 100 },
    loops: { repeat: 1000, pingPong: 1000, noProgressSteps: 1000, onLoop: 'stop' },
  };
  writeFileSync(path.join(dir, 'keel.config.json'), JSON.stringify(config));
  const loaded = loadConfig(path.join(dir, 'keel.config.json'));
  const store = createSqliteTaskStore(loaded.stateDir);
  try {
    const task = parseTaskFile(
      {
        type: 'bench',
        title: 'replay',
        description: 'echo 49 times',
        mode: 'single',
        tests: null,
        deploy: null,
      },
      'bench',
    );
    const t0 = performance.now();
    const { run } = await runTask({ loaded, task, store, env: {} });
    const original = performance.now() - t0;
    if (run.status !== 'succeeded' || run.steps !== steps)
      throw new Error(`original run: ${run.status}, ${run.steps} steps`);
    const requestsBefore = chat.requests.length;
    const t1 = performance.now();
    const report = await replayTask({ store, taskId: run.id, loaded, env: {} });
    const replay = performance.now() - t1;
    if (!report.identical) throw new Error(`replay diverged: ${JSON.stringify(report.divergence)}`);
    if (chat.requests.length !== requestsBefore) throw new Error('the replay called the model');
    log(
      `replay: original ${original.toFixed(0)} ms, replay ${replay.toFixed(0)} ms, ${report.steps} steps identical`,
    );
    return [
      {
        name: `keel replay of a ${steps}-step task / its original run (model latency ${modelLatencyMs} ms per step)`,
        keel: replay,
        reference: original,
        unit: 'ms',
        ratio: replay / original,
        target: '<= 0.5x',
        note: `${report.toolCalls.replayed} tool calls re-run, 0 model calls; includes cloning the workspace and starting the servers`,
      },
    ];
  } finally {
    await store.close();
    await chat.close();
  }
}

export async function run(context) {
  return [
    ...(await overheadPerStep(context)),
    ...(await limitOvershoot(context)),
    ...(await killAllLatency(context)),
    ...(await replayVersusOriginal(context)),
    ...(await statsOver100k(context)),
  ];
}
