// Keel against the peer harnesses a person would otherwise pick — OpenAI Agents JS and LangGraph.js
// (langchain's createAgent) — on the same 12-step task through the same three Keel servers over
// stdio and the same scripted chat-completions model, cold (a process per task, servers started
// for it) and warm (servers up, tasks in one process), at 0 and 200 ms of model latency, rounds
// interleaved. Each contender must make exactly the scripted calls, or its row fails.
import { fork, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { loadavg, cpus } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { median } from '../stats.mjs';
import { startModel } from './chat.mjs';
import { startOtlpReceiver } from './otlp.mjs';
import { ensurePeers, peersDir } from './peers.mjs';
import { summarizeProfile } from './profile.mjs';
import { pairedCell, renderReadme, renderTable } from './report.mjs';
import {
  checkConversation,
  checkWorkspace,
  createWorkspace,
  instructions,
  modelCalls,
  resetWorkspace,
  steps,
} from './task.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const resultsDir = path.join(here, '..', '..', 'results');
const profileDir = path.join(resultsDir, 'profiles');
/** KEEL_BENCH_HARNESS_PROFILE=1: V8 CPU profiles of the warm contenders over their measured tasks (slows them: figures from such a run are for the breakdown, not the ratios). */
const profiling = process.env['KEEL_BENCH_HARNESS_PROFILE'] === '1';
const numberList = (text) => text.split(',').map(Number);
const settings = {
  coldRounds: Number(process.env['KEEL_BENCH_HARNESS_COLD_ROUNDS'] ?? 5),
  warmRounds: Number(process.env['KEEL_BENCH_HARNESS_WARM_ROUNDS'] ?? 20),
  warmup: Number(process.env['KEEL_BENCH_HARNESS_WARMUP'] ?? 2),
  latencies: numberList(process.env['KEEL_BENCH_HARNESS_LATENCIES'] ?? '0,200'),
  modes: (process.env['KEEL_BENCH_HARNESS_MODES'] ?? 'cold,warm').split(','),
};

const supervisorManifest = fileURLToPath(import.meta.resolve('@keel/supervisor/package.json'));
const keelBin = path.join(path.dirname(supervisorManifest), 'dist', 'bin.js');

/** A Keel server's bin as the supervisor resolves it for `builtin:` servers. */
export function serverBin(packageName, bin) {
  const manifestPath = createRequire(supervisorManifest).resolve(`${packageName}/package.json`);
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
  return path.join(path.dirname(manifestPath), manifest.bin[bin]);
}

const serverArgs = ['--root', '.', '--log-level', 'error'];
const servers = [
  { name: 'filesystem', builtin: 'filesystem', bin: serverBin('@keel/server-filesystem', 'keel-filesystem') },
  { name: 'git', builtin: 'git', bin: serverBin('@keel/server-git', 'keel-git') },
  { name: 'tests', builtin: 'test-runner', bin: serverBin('@keel/server-test-runner', 'keel-test-runner') },
];

const peerSystem =
  'You are a coding agent working in a repository through your tools. Do the task, then answer "done".';
const model = 'bench-model';
const maxTurns = 20;

/**
 * The contenders. Two more Keels run warm only and are in no ratio: `keel-metered`, with timers
 * around its parts for the breakdown, and `keel-traced`, with its own spans exported over OTLP (what
 * `keel run` does when OTEL_* is set), to measure what span export costs.
 */
const contenders = [
  { id: 'keel', label: 'Keel', finish: 'keel' },
  { id: 'agents', label: 'OpenAI Agents JS', finish: 'text', entry: path.join(peersDir, 'agents.mjs') },
  { id: 'langgraph', label: 'LangGraph.js', finish: 'text', entry: path.join(peersDir, 'langgraph.mjs') },
  { id: 'keel-metered', label: 'Keel, metered', finish: 'keel', warmOnly: true, meter: true },
  { id: 'keel-traced', label: 'Keel, spans exported', finish: 'keel', warmOnly: true },
];

const load = () => Number(loadavg()[0].toFixed(2));

/** One contender's world for a phase: its workspace, state, scripted model and how to start it. */
async function prepare(contender, { phaseDir, latencyMs, mode, otlp }) {
  const dir = path.join(phaseDir, contender.id);
  const workspace = createWorkspace(path.join(dir, 'ws'));
  const chat = await startModel({
    finish: contender.finish,
    latencyMs: () => latencyMs,
    workspaceDir: workspace.dir,
  });
  const traced = mode === 'warm';
  const serverEnv = {
    KEEL_STATE_DIR: path.join(dir, 'state', 'servers'),
    ...(traced ? otlp.env(contender.id) : {}),
  };
  const spec = {
    mode,
    baseURL: chat.url,
    model,
    workspace: workspace.dir,
    servers: servers.map((s) => ({ name: s.name, command: process.execPath, args: [s.bin, ...serverArgs] })),
    serverEnv,
    instructions,
    system: peerSystem,
    maxTurns,
  };
  if (contender.finish === 'keel') {
    const agent = { model: 'chat', tools: {} };
    const config = {
      version: 1,
      workspace: 'ws',
      stateDir: 'state',
      servers: Object.fromEntries(servers.map((s) => [s.name, { builtin: s.builtin, args: serverArgs }])),
      models: { chat: { provider: 'openai-compatible', model, baseURL: chat.url } },
      prices: { [model]: { inputPerMTok: 0, outputPerMTok: 0 } },
      agents: { planning: agent, coding: agent, review: agent },
    };
    const task = {
      type: 'bench',
      title: 'Fix add',
      description: instructions,
      mode: 'single',
      tests: null,
      deploy: null,
    };
    writeFileSync(path.join(dir, 'keel.config.json'), JSON.stringify(config, null, 2));
    writeFileSync(path.join(dir, 'task.json'), JSON.stringify(task, null, 2));
    Object.assign(spec, {
      keelConfig: path.join(dir, 'keel.config.json'),
      keelTask: task,
      keelModelKey: 'chat',
      meter: contender.meter === true,
      ...(contender.id === 'keel-traced'
        ? { supervisorTraces: { ...otlp.env(`${contender.id}-supervisor`) } }
        : {}),
    });
  }
  return { contender, dir, workspace, chat, spec, tasks: [], failure: undefined };
}

/** KEEL_BENCH_HARNESS_ONLY=keel,agents runs only those contenders (a quicker look; no full table). */
function selected(contender) {
  const only = process.env['KEEL_BENCH_HARNESS_ONLY'];
  return only === undefined || only.split(',').includes(contender.id);
}

/** Runs a child to its end; resolves with its exit code and what it wrote. */
function runChild(command, args, options) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, output }));
  });
}

/** The problems of one finished task: its conversation with the model and what it left in the repository. */
function verify(world, from) {
  const requests = world.chat.requests.slice(from);
  return [...checkConversation(requests), ...checkWorkspace(world.workspace)];
}

async function coldTask(world) {
  resetWorkspace(world.workspace);
  const from = world.chat.requests.length;
  const env = { ...process.env, KEEL_CONFIG: '', KEEL_BENCH_SPEC: JSON.stringify(world.spec) };
  delete env['KEEL_STATE_DIR'];
  const started = performance.now();
  const result =
    world.contender.finish === 'keel'
      ? await runChild(
          process.execPath,
          [keelBin, 'run', 'task.json', '--config', 'keel.config.json', '--quiet'],
          {
            cwd: world.dir,
            env,
          },
        )
      : await runChild(process.execPath, [world.contender.entry], { cwd: world.dir, env });
  const wallMs = performance.now() - started;
  const problems =
    result.code === 0
      ? verify(world, from)
      : [`exited ${result.code ?? result.signal}: ${result.output.slice(-2000)}`];
  return { wallMs, problems };
}

/** A warm contender's process, started once with its servers; `run()` asks it for one task. */
async function startWarm(world) {
  const entry = world.contender.entry ?? path.join(here, 'keelWorker.mjs');
  const env = { ...process.env, KEEL_BENCH_SPEC: JSON.stringify(world.spec) };
  delete env['KEEL_STATE_DIR'];
  const child = fork(entry, [], { cwd: world.dir, env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let waiting;
  child.on('message', (message) => waiting?.(message));
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  const next = () =>
    new Promise((resolve, reject) => {
      waiting = resolve;
      void exited.then((code) => reject(new Error(`${world.contender.id} worker exited (${code})`)));
    });
  const ready = await next();
  if (ready.type !== 'ready') throw new Error(`${world.contender.id} worker said ${JSON.stringify(ready)}`);
  return {
    async run() {
      child.send({ type: 'run' });
      return next();
    },
    async profile(action, file) {
      child.send({ type: 'profile', action, file });
      const answer = await next();
      if (answer.type !== 'profiled') throw new Error(`${world.contender.id} profiler: ${answer.error}`);
    },
    async stop() {
      if (child.exitCode === null) child.send({ type: 'stop' });
      return exited;
    },
  };
}

async function warmTask(world, worker) {
  resetWorkspace(world.workspace);
  const from = world.chat.requests.length;
  const answer = await worker.run();
  if (answer.type !== 'done') return { problems: [`the task failed: ${answer.error}`] };
  const to = world.chat.requests.length;
  return {
    wallMs: answer.wallMs,
    cpuMs: answer.cpuMs,
    startMs: answer.startMs,
    endMs: answer.endMs,
    modelMs: world.chat.serverMs(from, to),
    modelTimes: world.chat.serverTimes(from, to),
    requestBytes: world.chat.requests.slice(from, to).map((r) => Buffer.byteLength(JSON.stringify(r.body))),
    detail: answer.detail,
    problems: verify(world, from),
  };
}

/**
 * How far a span may lie outside its task's window: the servers' clocks and the worker's are each
 * their process's time origin plus a monotonic clock. A contender's next task starts seconds later
 * (the others run theirs in between), so the slack cannot take in a neighbour's calls.
 */
const spanSlackMs = 50;

const isSubsequence = (wanted, list) => {
  let at = 0;
  for (const item of list) if (item === wanted[at]) at++;
  return at === wanted.length;
};

/**
 * The tool servers' own time for each warm task, from their spans, once every task's spans are in;
 * checks the calls the servers saw: a peer's are exactly the scripted ones, Keel's contain them in order.
 */
async function attachToolTime(world, otlp) {
  const scripted = steps.map((s) => s.name);
  const deadline = performance.now() + 15_000;
  for (;;) {
    const missing = world.tasks.filter((t) => {
      const names = otlp
        .toolSpans(world.contender.id, t.startMs - spanSlackMs, t.endMs + spanSlackMs)
        .map((s) => s.tool);
      return !isSubsequence(scripted, names);
    });
    if (missing.length === 0 || performance.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  for (const task of world.tasks) {
    const spans = otlp.toolSpans(world.contender.id, task.startMs - spanSlackMs, task.endMs + spanSlackMs);
    const names = spans.map((s) => s.tool);
    const errors = spans.filter((s) => s.error !== undefined).map((s) => `${s.tool}: ${s.error}`);
    if (errors.length > 0) task.problems.push(`tool calls failed at the server: ${errors.join(', ')}`);
    if (
      world.contender.finish === 'keel' ? !isSubsequence(scripted, names) : names.join() !== scripted.join()
    )
      task.problems.push(`the servers saw ${names.join(', ')}; scripted ${scripted.join(', ')}`);
    task.toolCalls = names.length;
    task.extraCalls = world.contender.finish === 'keel' ? extras(scripted, names) : [];
    task.toolMs = spans.reduce((sum, s) => sum + (s.endMs - s.startMs), 0);
    // Server time counted once where it overlaps (Keel reads its starting state while its first
    // model request is out); a peer's calls never overlap, so for it this is the plain sum.
    task.overheadMs = task.wallMs - covered([...task.modelTimes, ...spans.map((s) => [s.startMs, s.endMs])]);
    // Where the time went, relative to the task's start: model requests and tool calls at their servers.
    const at = (value) => Number((value - task.startMs).toFixed(1));
    task.timeline = [
      ...task.modelTimes.map(([from, to]) => ['model', at(from), at(to)]),
      ...spans.map((s) => [s.tool, at(s.startMs), at(s.endMs)]),
    ].sort((a, b) => a[1] - b[1]);
    delete task.modelTimes;
  }
}

/** How long the intervals ([from, to], ms) cover together: overlapping parts once. */
function covered(intervals) {
  let sum = 0;
  let end = -Infinity;
  for (const [from, to] of [...intervals].sort((a, b) => a[0] - b[0])) {
    if (to <= end) continue;
    sum += to - Math.max(from, end);
    end = to;
  }
  return sum;
}

/** The calls in `names` beyond the scripted ones (greedy match in order). */
function extras(scripted, names) {
  const out = [];
  let at = 0;
  for (const name of names) {
    if (name === scripted[at]) at++;
    else out.push(name);
  }
  return out;
}

async function phase(mode, latencyMs, context, otlp, failures) {
  const { log, workDir } = context;
  const phaseDir = path.join(workDir, `${mode}-${latencyMs}`);
  const active = contenders.filter((c) => (mode === 'warm' || !c.warmOnly) && selected(c));
  const worlds = [];
  for (const contender of active) worlds.push(await prepare(contender, { phaseDir, latencyMs, mode, otlp }));
  const loadBefore = load();
  const rounds = mode === 'cold' ? settings.coldRounds : settings.warmRounds;
  const workers = new Map();
  try {
    if (mode === 'warm') {
      for (const world of worlds) workers.set(world, await startWarm(world));
      for (let w = 0; w < settings.warmup; w++)
        for (const world of worlds) {
          const task = await warmTask(world, workers.get(world));
          if (task.problems.length > 0) world.failure ??= task.problems;
        }
    }
    if (profiling && mode === 'warm') for (const world of worlds) await workers.get(world).profile('start');
    for (let round = 0; round < rounds; round++) {
      for (const world of worlds) {
        if (world.failure !== undefined) continue;
        const task = mode === 'cold' ? await coldTask(world) : await warmTask(world, workers.get(world));
        if (task.problems.length > 0) world.failure = task.problems;
        else world.tasks.push(task);
      }
      log(
        `${mode} ${latencyMs} ms, round ${round + 1}/${rounds}: ${worlds
          .map((w) => `${w.contender.id} ${w.failure ? 'FAILED' : `${w.tasks.at(-1).wallMs.toFixed(0)} ms`}`)
          .join(', ')} (load ${load()})`,
      );
    }
    if (profiling && mode === 'warm')
      for (const world of worlds) {
        const file = path.join(profileDir, `${mode}-${latencyMs}-${world.contender.id}.cpuprofile`);
        await workers.get(world).profile('stop', file);
        world.profile = summarizeProfile(
          JSON.parse(readFileSync(file, 'utf8')),
          world.tasks.length * modelCalls,
        );
      }
  } finally {
    for (const worker of workers.values()) await worker.stop();
  }
  if (mode === 'warm')
    for (const world of worlds) {
      if (world.failure !== undefined) continue;
      await attachToolTime(world, otlp);
      const bad = world.tasks.find((t) => t.problems.length > 0);
      if (bad !== undefined) world.failure = bad.problems;
    }
  for (const world of worlds) await world.chat.close();
  const row = { mode, latencyMs, load: [loadBefore, load()], rounds, contenders: {} };
  for (const world of worlds) {
    const id = world.contender.id;
    if (world.failure !== undefined) {
      failures.push(`${mode} ${latencyMs} ms, ${world.contender.label}: ${world.failure.join('; ')}`);
      row.contenders[id] = { failed: world.failure };
      continue;
    }
    const entry = {
      medianMs: median(world.tasks.map((t) => t.wallMs)),
      wallMs: world.tasks.map((t) => t.wallMs),
      ...(mode === 'warm' ? { timelines: world.tasks.map((t) => t.timeline) } : {}),
    };
    if (mode === 'warm') Object.assign(entry, warmFigures(world));
    if (world.profile !== undefined) entry.profilePerStepMs = world.profile;
    row.contenders[id] = entry;
  }
  return row;
}

/** Per-step figures of a warm contender: overhead, its own CPU and, for Keel, where they go. */
function warmFigures(world) {
  const perStep = (pick) => median(world.tasks.map((t) => pick(t) / modelCalls));
  const figures = {
    overheadPerStepMs: perStep((t) => t.overheadMs),
    cpuPerStepMs: perStep((t) => t.cpuMs),
    modelServerPerStepMs: perStep((t) => t.modelMs),
    toolServerPerStepMs: perStep((t) => t.toolMs),
    toolCallsPerTask: median(world.tasks.map((t) => t.toolCalls)),
    requestBytes: { first: world.tasks[0]?.requestBytes[0], last: world.tasks[0]?.requestBytes.at(-1) },
    extraCalls: world.tasks[0]?.extraCalls ?? [],
  };
  if (world.contender.meter === true) {
    const part = (t, name, field) => t.detail.parts[name]?.[field] ?? 0;
    const stores = (t, field) =>
      Object.entries(t.detail.parts)
        .filter(([name]) => name.startsWith('store.'))
        .reduce((sum, [, p]) => sum + p[field], 0);
    // Wall: a part's time minus what its server did meanwhile. CPU: the process's own, so no server time to take off.
    const wall = {
      modelAdapter: (t) => part(t, 'model', 'wallMs') - t.modelMs,
      recordWrites: (t) => stores(t, 'wallMs'),
      mcpClient: (t) => part(t, 'mcp', 'wallMs') - t.toolMs,
      serverPool: (t) => part(t, 'pool', 'wallMs'),
    };
    const cpu = {
      modelAdapter: (t) => part(t, 'model', 'cpuMs'),
      recordWrites: (t) => stores(t, 'cpuMs'),
      mcpClient: (t) => part(t, 'mcp', 'cpuMs'),
      serverPool: (t) => part(t, 'pool', 'cpuMs'),
    };
    const rest = (parts, total) => (t) =>
      total(t) - Object.values(parts).reduce((sum, pick) => sum + pick(t), 0);
    figures.breakdownPerStepMs = {
      wall: {
        ...Object.fromEntries(Object.entries(wall).map(([k, pick]) => [k, perStep(pick)])),
        engine: perStep(rest(wall, (t) => t.overheadMs)),
      },
      cpu: {
        ...Object.fromEntries(Object.entries(cpu).map(([k, pick]) => [k, perStep(pick)])),
        engine: perStep(rest(cpu, (t) => t.cpuMs)),
      },
    };
    figures.callsPerTask = Object.fromEntries(
      [...new Set(world.tasks.flatMap((t) => Object.keys(t.detail.parts)))].map((name) => [
        name,
        {
          calls: median(world.tasks.map((t) => part(t, name, 'calls'))),
          cpuMs: median(world.tasks.map((t) => part(t, name, 'cpuMs'))),
        },
      ]),
    );
  }
  return figures;
}

export async function run(context) {
  const { log } = context;
  const versions = ensurePeers(log);
  if (profiling) mkdirSync(profileDir, { recursive: true });
  const otlp = await startOtlpReceiver();
  const failures = [];
  const rows = [];
  try {
    for (const latencyMs of settings.latencies)
      for (const mode of settings.modes) rows.push(await phase(mode, latencyMs, context, otlp, failures));
  } finally {
    await otlp.close();
  }
  const report = {
    at: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    settings: { ...settings, profiling },
    peers: versions,
    rows,
    failures,
  };
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(path.join(resultsDir, 'harness.json'), `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`\n${renderTable(report)}\n`);
  renderReadme(report);
  if (failures.length > 0) throw new Error(`contenders failed their check:\n${failures.join('\n')}`);
  return summaryRows(report);
}

/** The rows `pnpm bench` prints with every suite's: Keel's ratio to each peer, per run. */
function summaryRows(report) {
  const out = [];
  for (const row of report.rows) {
    const keel = row.contenders.keel;
    for (const peer of ['agents', 'langgraph']) {
      const other = row.contenders[peer];
      if (keel?.medianMs === undefined || other?.medianMs === undefined) continue;
      out.push({
        name: `${row.mode} task, ${row.latencyMs} ms model latency: Keel / ${contenders.find((c) => c.id === peer).label}`,
        keel: keel.medianMs,
        reference: other.medianMs,
        unit: 'ms',
        ratio: keel.medianMs / other.medianMs,
        target: '<= 1.0',
        note: `per round ${pairedCell(keel, other)} (median, 95% interval)`,
      });
      if (row.mode === 'warm')
        out.push({
          name: `warm overhead per step, ${row.latencyMs} ms: Keel / ${contenders.find((c) => c.id === peer).label}`,
          keel: keel.overheadPerStepMs,
          reference: other.overheadPerStepMs,
          unit: 'ms',
          ratio: keel.overheadPerStepMs / other.overheadPerStepMs,
          target: 'keel <= 5 ms',
        });
    }
  }
  return out;
}
