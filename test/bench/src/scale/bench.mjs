import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync, chownSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startScriptedChatServer } from '@keel/testing/chat-server';
import { createPostgresTaskStore } from '@keel/supervisor';
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
const script = ({ body }) => {
  const turns = body.messages.filter((m) => m.role === 'assistant').length;
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
}

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

/**
 * Tasks per minute with 1, 2 and 4 `keel worker` processes on one PostgreSQL store, each task four
 * model calls of 300 ms and three tool calls; and `keel kill --all` across three workers.
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
      const started = performance.now();
      const procs = Array.from({ length: workers }, (_, i) =>
        spawn(
          process.execPath,
          [keelBin, 'worker', '--config', 'keel.config.json', '--quiet', '--id', `w${i}`],
          { cwd: dir, env: { ...process.env, ...env }, stdio: 'ignore' },
        ),
      );
      for (;;) {
        const done = await store.listTasks({ status: 'succeeded', limit: 1000 });
        if (done.length >= tasksPerRun) break;
        await sleep(100);
      }
      const minutes = (performance.now() - started) / 60_000;
      rates[workers] = tasksPerRun / minutes;
      log(`${workers} worker(s): ${rates[workers].toFixed(1)} tasks/min`);
      for (const p of procs) p.kill('SIGTERM');
      await store.close();
    }
    for (const workers of [2, 4])
      rows.push({
        name: `tasks per minute, ${workers} workers / 1 worker (task bound by ${latencyMs} ms model calls)`,
        keel: rates[workers],
        reference: rates[1],
        unit: 'tasks/min',
        ratio: rates[workers] / rates[1],
        target: workers === 2 ? '≥ 1.8' : '≥ 3.2',
        note: `${tasksPerRun} queued tasks, timed from starting the workers (their start-up included) until all succeeded; load average ${(await import('node:os')).loadavg()[0].toFixed(1)}`,
      });
  } finally {
    await chat.close();
    await server.stop();
  }
  return rows;
}
