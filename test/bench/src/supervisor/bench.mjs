import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSqliteTaskStore, loadConfig, parseTaskFile, runTask } from '@keel/supervisor';
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

export async function run(context) {
  return [...(await overheadPerStep(context)), ...(await limitOvershoot(context))];
}
