import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync, chownSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, loadavg } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startScriptedChatServer } from '@keel/testing/chat-server';
import { createPostgresTaskStore } from '@keel/supervisor';
import { tree } from '../procs.mjs';
import { storeRows } from './stores.mjs';

const keelBin = fileURLToPath(new URL('../../../../apps/supervisor/dist/bin.js', import.meta.url));
const fixtureBin = fileURLToPath(
  new URL('../../node_modules/@keel/testing/dist/fixture/bin.js', import.meta.url),
);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

/** KEEL_TEST_DATABASE_URL, or a throwaway cluster of Debian's PostgreSQL (as the postgres user when root). */
async function postgres(workDir, log) {
  if (process.env.KEEL_TEST_DATABASE_URL)
    return { url: process.env.KEEL_TEST_DATABASE_URL, stop: async () => {} };
  const roots = readdirSync('/usr/lib/postgresql').sort();
  if (roots.length === 0)
    throw new Error('no PostgreSQL: install Debian postgresql, or set KEEL_TEST_DATABASE_URL');
  const bin = `/usr/lib/postgresql/${roots.at(-1)}/bin`;
  const data = mkdtempSync(path.join(workDir, 'pg-'));
  const asRoot = process.getuid?.() === 0;
  const run = (cmd, args) =>
    asRoot ? execFileSync('runuser', ['-u', 'postgres', '--', cmd, ...args]) : execFileSync(cmd, args);
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
    chownSync(workDir, uid, gid);
    chownSync(data, uid, gid);
  }
  const port = await freePort();
  run(`${bin}/initdb`, ['-D', data, '-A', 'trust', '-U', 'postgres']);
  run(`${bin}/pg_ctl`, [
    '-D',
    data,
    '-l',
    path.join(data, 'log'),
    '-w',
    '-o',
    `-p ${port} -k ${data} -c listen_addresses=127.0.0.1 -c max_connections=300`,
    'start',
  ]);
  log(`postgresql on 127.0.0.1:${port}`);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    stop: async () => run(`${bin}/pg_ctl`, ['-D', data, '-m', 'immediate', 'stop']),
  };
}

async function freshDatabase(url, name) {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Each model call answers in a fixed 300 ms: a task bound by model latency, as real ones are. */
const latencyMs = 300;
/** Marks the kill measurement's task, and the tool process it leaves sleeping. */
const sleeperMark = 'bench-sleeper';
const script = ({ body }) => {
  const turns = body.messages.filter((m) => m.role === 'assistant').length;
  if (JSON.stringify(body.messages).includes(sleeperMark))
    return {
      toolCalls: [
        { name: 'run_node', arguments: { script: `setTimeout(() => {}, 600000) // ${sleeperMark}` } },
      ],
    };
  return turns < 3
    ? { delayMs: latencyMs, toolCalls: [{ name: 'echo', arguments: { text: `turn ${turns}` } }] }
    : {
        delayMs: latencyMs,
        toolCalls: [
          {
            name: 'submit_change',
            arguments: { version: 'change.v1', summary: 'done', files: [], commit: null },
          },
        ],
      };
};

/** CPU seconds a worker has used, with its servers and tool processes, live or ended. */
function cpuSeconds(root) {
  const ticksPerSecond = 100;
  return tree(root).reduce((sum, p) => sum + p.ticks.reduce((a, b) => a + b, 0), 0) / ticksPerSecond;
}

function writeProject(dir, chatUrl) {
  const ws = path.join(dir, 'ws');
  mkdirSync(ws, { recursive: true });
  writeFileSync(path.join(ws, 'README.md'), '# scale\n');
  const tools = { fixture: ['echo'] };
  writeFileSync(
    path.join(dir, 'keel.config.json'),
    JSON.stringify({
      version: 1,
      workspace: 'ws',
      stateDir: 'state',
      servers: {
        fixture: {
          command: process.execPath,
          args: [fixtureBin, '--root', '.', '--state-dir', '../state/fixture', '--log-level', 'error'],
        },
      },
      models: { chat: { provider: 'openai-compatible', model: 'scripted', baseURL: chatUrl } },
      prices: { scripted: { inputPerMTok: 0, outputPerMTok: 0 } },
      agents: {
        planning: { model: 'chat', tools },
        coding: { model: 'chat', tools },
        review: { model: 'chat', tools },
      },
    }),
  );
  writeFileSync(
    path.join(dir, 'task.json'),
    JSON.stringify({
      type: 'scale',
      title: 'echo three times',
      description: 'echo',
      mode: 'single',
      tests: null,
      deploy: null,
    }),
  );
  writeFileSync(
    path.join(dir, 'sleep.json'),
    JSON.stringify({
      type: 'scale',
      title: 'sleep in a tool process',
      description: sleeperMark,
      mode: 'single',
      tests: null,
      deploy: null,
    }),
  );
}

const startWorkers = (n, dir, env) =>
  Array.from({ length: n }, (_, i) =>
    spawn(process.execPath, [keelBin, 'worker', '--config', 'keel.config.json', '--quiet', '--id', `w${i}`], {
      cwd: dir,
      env: { ...process.env, ...env },
      stdio: 'ignore',
    }),
  );

const stopWorkers = (procs) =>
  Promise.all(
    procs.map((p) => {
      const exited = new Promise((resolve) => (p.exitCode !== null ? resolve() : p.once('exit', resolve)));
      p.kill('SIGTERM');
      return exited;
    }),
  );

const keel = (args, cwd, env) =>
  new Promise((resolve) => {
    const child = spawn(process.execPath, [keelBin, ...args, '--config', 'keel.config.json'], {
      cwd,
      env: { ...process.env, ...env },
    });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.on('close', (code) => resolve({ code, out }));
  });

/** Minutes from the first task's start (recorded once its servers are up) to the last task's end. */
async function runningMinutes(store) {
  const tasks = await store.listTasks({ limit: 1000 });
  const starts = await Promise.all(
    tasks.map(async (task) => (await store.listEvents(task.id)).find((e) => e.type === 'task_started')),
  );
  const first = Math.min(...starts.map((event) => Date.parse(event.at)));
  const last = Math.max(...tasks.map((task) => Date.parse(task.endedAt)));
  return (last - first) / 60_000;
}

/**
 * `keel kill --all` with a task on each of three workers, each inside a tool call whose process
 * sleeps: milliseconds from running the command until every task is recorded `killed` and no
 * sleeping tool process is left.
 */
async function killAcrossWorkers(serverUrl, chatUrl, workDir) {
  const dir = mkdtempSync(path.join(workDir, 'kill-'));
  writeProject(dir, chatUrl);
  const url = await freshDatabase(serverUrl, 'keel_scale_kill');
  const env = { KEEL_DATABASE_URL: url };
  const store = await createPostgresTaskStore(url);
  const procs = startWorkers(3, dir, env);
  try {
    await Promise.all([0, 1, 2].map(() => keel(['submit', 'sleep.json'], dir, env)));
    const sleepers = () =>
      procs.map((w) => tree(w.pid).filter((p) => p.pid !== w.pid && p.cmdline.includes(sleeperMark)));
    for (let i = 0; ; i++) {
      if (sleepers().every((list) => list.length > 0)) break;
      if (i > 1200) throw new Error('the three workers never each held a sleeping tool process');
      await sleep(50);
    }
    const started = performance.now();
    await keel(['kill', '--all', '--as', 'bench'], dir, env);
    for (;;) {
      const open = await Promise.all(
        ['queued', 'running'].map((status) => store.listTasks({ status, limit: 10 })),
      );
      if (open.flat().length === 0 && sleepers().flat().length === 0) break;
      await sleep(10);
    }
    return performance.now() - started;
  } finally {
    await stopWorkers(procs);
    await store.close();
  }
}

/**
 * Keyed claim + complete per second on the kit's PostgreSQL store against its SQLite store; tasks per
 * minute with 1, 2 and 4 `keel worker` processes on one PostgreSQL store, each task four model calls
 * of 300 ms and three tool calls; and `keel kill --all` across three workers.
 */
export async function run({ log, workDir }) {
  const server = await postgres(workDir, log);
  const chat = await startScriptedChatServer({ script });
  const rows = [];
  try {
    rows.push(
      ...(await storeRows({
        log,
        workDir,
        databaseUrl: await freshDatabase(server.url, 'keel_scale_stores'),
      })),
    );
    const tasksPerRun = 24;
    const rates = {};
    const running = {};
    const cpu = {};
    const load = {};
    for (const workers of [1, 2, 4]) {
      const dir = mkdtempSync(path.join(workDir, `w${workers}-`));
      writeProject(dir, chat.url);
      const url = await freshDatabase(server.url, `keel_scale_${workers}`);
      const env = { KEEL_DATABASE_URL: url };
      // Queue every task first (the submits' own start-up is not the workers' work), then time the workers.
      for (let i = 0; i < tasksPerRun; i += 4)
        await Promise.all(
          Array.from({ length: Math.min(4, tasksPerRun - i) }, () => keel(['submit', 'task.json'], dir, env)),
        );
      const store = await createPostgresTaskStore(url);
      load[workers] = loadavg()[0];
      const started = performance.now();
      const procs = startWorkers(workers, dir, env);
      for (;;) {
        const done = await store.listTasks({ status: 'succeeded', limit: 1000 });
        if (done.length >= tasksPerRun) break;
        await sleep(100);
      }
      const minutes = (performance.now() - started) / 60_000;
      rates[workers] = tasksPerRun / minutes;
      running[workers] = tasksPerRun / (await runningMinutes(store));
      cpu[workers] = procs.reduce((sum, p) => sum + cpuSeconds(p.pid), 0) / tasksPerRun;
      log(
        `${workers} worker(s): ${rates[workers].toFixed(1)} tasks/min (${running[workers].toFixed(1)} from the first task started), ${cpu[workers].toFixed(3)} CPU s per task (workers and their servers, start-up included)`,
      );
      await stopWorkers(procs);
      await store.close();
    }
    const cores = availableParallelism();
    for (const workers of [2, 4])
      rows.push({
        name: `tasks per minute, ${workers} workers / 1 worker (task bound by ${latencyMs} ms model calls)`,
        keel: rates[workers],
        reference: rates[1],
        unit: 'tasks/min',
        ratio: rates[workers] / rates[1],
        target: workers === 2 ? '≥ 1.8' : '≥ 3.2',
        note: `${tasksPerRun} queued tasks, timed from starting the workers (their start-up included) until all succeeded; from the first task started instead (worker start-up left out): ${running[workers].toFixed(1)} / ${running[1].toFixed(1)} tasks/min = ${(running[workers] / running[1]).toFixed(3)}; CPU s per task ${cpu[1].toFixed(3)} (1 worker), ${cpu[workers].toFixed(3)} (${workers}): ${cores} cores would run at most ${((cores / cpu[workers]) * 60).toFixed(0)} tasks/min; load average ${load[1].toFixed(1)} / ${load[workers].toFixed(1)} at the start`,
      });
    const killMs = await killAcrossWorkers(server.url, chat.url, workDir);
    log(`kill --all across three workers: ${killMs.toFixed(0)} ms until every task stopped`);
    rows.push({
      name: 'keel kill --all, a task in a sleeping tool process on each of three workers',
      keel: killMs,
      reference: 1000,
      unit: 'ms',
      ratio: killMs / 1000,
      target: 'report (the kill switch: 1 s)',
      note: 'from running keel kill --all (its own start-up included) until every task is killed and no sleeping tool process is left',
    });
  } finally {
    await chat.close();
    await server.stop();
  }
  return rows;
}
