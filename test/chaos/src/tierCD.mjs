// Tiers C and D, on PostgreSQL (slow: fewer rounds). Two `keel worker --concurrency 2` share a
// fresh database and run two submitted tasks (playbook model: commit, a one-second test run,
// commit) in one repository. The fault of a round:
//  C `worker-kill`: the worker owning a task SIGKILLed with its process tree at a seeded moment; a
//    fresh worker joins.
//  C `pg_terminate_backend`: every connection of Keel's processes to the database terminated at a
//  seeded moment (the campaign's own observer excepted).
//  D `stall`: the owner of a task SIGSTOPped past its heartbeat until the other worker has taken the
//    task over, then SIGCONTed.
// Invariants once both tasks end: each `succeeded`, its steps 1–8 recorded once and
// `task_finished` once, no owner left; every commit once in `git log`; `keel audit verify` ok;
// after the workers stop, nothing left running.
import { execFile as execFileCb, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { stringify } from 'yaml';
import { createPostgresTaskStore } from '@keel/supervisor';
import { keelBin } from './tierB.mjs';
import { killAll, leftoverIn, sleep } from './procs.mjs';
import { initRepo } from './repo.mjs';

const execFile = promisify(execFileCb);
export const tierCDFaults = [
  { tier: 'C', target: 'worker (concurrency 2)', point: 'random' },
  { tier: 'C', target: 'PostgreSQL backends', point: 'pg_terminate_backend' },
  { tier: 'D', target: 'worker (concurrency 2)', point: 'SIGSTOP past heartbeat, taken over' },
];

const taskFile = (name) => ({
  type: 'chaos',
  title: name,
  description: 'commit, test, commit',
  mode: 'single',
  deploy: null,
  tests: null,
  playbook: {
    coding: [
      [
        { call: 'write_file', args: { path: `${name}/a.txt`, content: 'a\n' } },
        { call: 'git_add', args: { repo: name, paths: ['a.txt'] } },
        { call: 'git_commit', args: { repo: name, message: `${name}: first` } },
        { call: 'run_tests', args: { files: ['test/sleep.test.mjs'] } },
        { call: 'write_file', args: { path: `${name}/b.txt`, content: 'b\n' } },
        { call: 'git_add', args: { repo: name, paths: ['b.txt'] } },
        { call: 'git_commit', args: { repo: name, message: `${name}: second` } },
        { submit: { version: 'change.v1', summary: 'two commits', files: [], commit: null } },
      ],
    ],
  },
});
const steps = 8;

async function admin(url, text) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(text)).rows;
  } finally {
    await client.end();
  }
}

async function createWorld(dir, adminUrl) {
  const name = `keel_chaos_${randomBytes(5).toString('hex')}`;
  await admin(adminUrl, `CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const ws = path.join(dir, 'ws');
  mkdirSync(path.join(ws, 'test'), { recursive: true });
  writeFileSync(
    path.join(ws, 'package.json'),
    `${JSON.stringify({ name: 'w', private: true, type: 'module', scripts: { test: 'node --test' } })}\n`,
  );
  writeFileSync(
    path.join(ws, 'test', 'sleep.test.mjs'),
    "import { test } from 'node:test';\n\ntest('sleeps 1 s', async () => {\n  await new Promise((resolve) => setTimeout(resolve, 1000));\n});\n",
  );
  // Each task commits in a repository of its own (t1/, t2/): two tasks at once in one index
  // would commit each other's staged files.
  writeFileSync(path.join(ws, '.gitignore'), 't1/\nt2/\n');
  for (const repo of [ws, path.join(ws, 't1'), path.join(ws, 't2')]) {
    mkdirSync(repo, { recursive: true });
    if (repo !== ws) writeFileSync(path.join(repo, 'README.md'), '# task repo\n');
    await initRepo(repo);
  }
  writeFileSync(
    path.join(dir, 'keel.config.yaml'),
    stringify({
      version: 1,
      workspace: 'ws',
      stateDir: 'state',
      servers: {
        filesystem: { builtin: 'filesystem', args: ['--root', '.'] },
        git: { builtin: 'git', args: ['--root', '.'] },
        tests: { builtin: 'test-runner', args: ['--root', '.'] },
      },
      models: { playbook: { provider: 'playbook' } },
      agents: {
        planning: { model: 'playbook', tools: { filesystem: ['read_file'] } },
        coding: {
          model: 'playbook',
          tools: {
            filesystem: ['read_file', 'write_file'],
            git: ['git_status', 'git_add', 'git_commit'],
            tests: ['run_tests'],
          },
        },
        review: { model: 'playbook', tools: { filesystem: ['read_file'] } },
      },
    }),
  );
  return { dir, ws, url: url.toString(), name, env: { KEEL_DATABASE_URL: url.toString() } };
}

function startKeel(args, world) {
  const child = spawn(process.execPath, [keelBin, ...args], {
    cwd: world.dir,
    env: { ...process.env, KEEL_CONFIG: '', ...world.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  child.stdout.on('data', (c) => (stdout += c.toString()));
  child.stderr.on('data', (c) => (stderr += c.toString()));
  const exited = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  return { pid: child.pid, exited, stderr: () => stderr, stdout: () => stdout };
}

const startWorker = (world, id) =>
  startKeel(['worker', '--id', id, '--quiet', '--heartbeat-ms', '500', '--concurrency', '2'], world);

/** Every process below `root`. */
function treeOf(root) {
  const parents = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      parents.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // Gone.
    }
  }
  const out = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift();
    for (const [child, parent] of parents)
      if (parent === pid) {
        out.push(child);
        queue.push(child);
      }
  }
  return out;
}

const observerName = 'keel-chaos-observer';

async function until(what, probe, ms) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) return undefined;
    await sleep(100);
  }
}

/**
 * What a stuck round looked like, on the campaign's log (the round's directory and database go when
 * it ends): each task's owner and last events, each worker's last log lines.
 */
async function tellStuck(store, ids, workers) {
  const lines = [];
  for (const id of ids) {
    const task = await store.getTask(id);
    const owner = await store.getOwner(id);
    const events = (await store.listEvents(id)).slice(-6).map((e) => e.type);
    lines.push(`  ${id} ${task?.status}: owner ${JSON.stringify(owner)}; last events ${events.join(' ')}`);
  }
  for (const w of workers)
    lines.push(`  worker ${w.pid}: ${w.stderr().slice(-1500).replaceAll('\n', '\n    ')}`);
  process.stderr.write(`chaos: a stuck round:\n${lines.join('\n')}\n`);
}

/** One round with `fault`; `record(violation?)` is told of the death and of each violation. */
export async function runRoundCD({ dir, adminUrl, fault, random, record }) {
  const world = await createWorld(dir, adminUrl);
  // The campaign's own view of the store, named so the backend fault leaves it be: the fault is
  // for Keel's workers, and an observer that died with them would end the campaign, not test it.
  const observerUrl = new URL(world.url);
  observerUrl.searchParams.set('application_name', observerName);
  const store = await createPostgresTaskStore(observerUrl.toString());
  const workers = [startWorker(world, 'w1'), startWorker(world, 'w2')];
  try {
    const ids = [];
    for (const name of ['t1', 't2']) {
      const file = path.join(world.dir, `${name}.task.yaml`);
      writeFileSync(file, stringify(taskFile(name)));
      const submitted = startKeel(['submit', file], world);
      const exit = await submitted.exited;
      if (exit.code !== 0) {
        record(`keel submit exited ${exit.code}: ${submitted.stderr().slice(-300)}`);
        return;
      }
      ids.push(submitted.stdout().trim());
    }
    // The moment: a task owned and past its first commit, then a seeded delay of up to 3 s.
    const owned = await until(
      'a task owned past its first commit',
      async () => {
        for (const id of ids) {
          const owner = await store.getOwner(id);
          const calls = await store.listToolCalls(id);
          if (owner?.worker !== undefined && calls.some((c) => c.tool === 'git_commit')) return { id, owner };
        }
        return undefined;
      },
      120_000,
    );
    if (owned === undefined) {
      record('no task got past its first commit in 120 s');
      return;
    }
    await sleep(random.next() * 3000);
    const holder = workers.find((w) => w.pid === owned.owner.pid);
    if (fault.point === 'random') {
      if (holder !== undefined) {
        const tree = treeOf(holder.pid);
        process.kill(holder.pid, 'SIGKILL');
        killAll(tree.map((pid) => ({ pid })));
        await holder.exited;
        record();
        workers.push(startWorker(world, 'w3'));
      }
    } else if (fault.point === 'pg_terminate_backend') {
      await admin(
        adminUrl,
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${world.name}' AND pid <> pg_backend_pid() AND application_name <> '${observerName}'`,
      );
      record();
    } else if (holder !== undefined) {
      process.kill(holder.pid, 'SIGSTOP');
      const taken = await until(
        'the other worker to take the task over',
        async () => {
          const owner = await store.getOwner(owned.id);
          const task = await store.getTask(owned.id);
          if (task?.status !== 'running') return 'ended';
          return owner !== null && owner.pid !== holder.pid ? 'taken' : undefined;
        },
        60_000,
      );
      process.kill(holder.pid, 'SIGCONT');
      if (taken === 'taken') record();
      else if (taken === undefined) record('a stalled worker’s task was not taken over in 60 s');
    }
    const ended = await until(
      'both tasks to end',
      async () => {
        const tasks = await Promise.all(ids.map((id) => store.getTask(id)));
        return tasks.every((t) => t !== undefined && !['queued', 'starting', 'running'].includes(t.status))
          ? tasks
          : undefined;
      },
      240_000,
    );
    if (ended === undefined) {
      record(
        `tasks did not end in 240 s: ${(await Promise.all(ids.map((id) => store.getTask(id)))).map((t) => t?.status).join(', ')}`,
      );
      await tellStuck(store, ids, workers);
      return;
    }
    for (const task of ended) {
      if (task.status !== 'succeeded')
        record(`task ${task.id} ended ${task.status}: ${task.run?.outcome.message}`);
      const answered = (await store.listModelCalls(task.id))
        .filter((c) => c.reply !== null)
        .map((c) => c.step);
      if (answered.join(',') !== Array.from({ length: steps }, (_, i) => i + 1).join(','))
        record(
          `task ${task.id}: model calls answered for steps ${answered.join(',')}, expected 1..${steps} once each`,
        );
      const events = await store.listEvents(task.id);
      const finished = events.filter((e) => e.type === 'task_finished').length;
      if (finished !== 1) record(`task ${task.id}: task_finished ${finished} times`);
      const owner = await store.getOwner(task.id);
      if (owner !== null) record(`task ${task.id} ended with an owner: ${JSON.stringify(owner)}`);
    }
    for (const name of ['t1', 't2']) {
      const log = (
        await execFile('git', ['log', '--format=%s'], { cwd: path.join(world.ws, name) })
      ).stdout.trim();
      if (log !== `${name}: second\n${name}: first\ninitial`)
        record(`${name}'s git log is not its two commits once each: ${log.replaceAll('\n', ' | ')}`);
    }
    const verify = startKeel(['audit', 'verify'], world);
    const v = await verify.exited;
    if (v.code !== 0 || !verify.stdout().startsWith('ok:'))
      record(`keel audit verify: ${verify.stdout()}${verify.stderr()}`);
  } finally {
    for (const w of workers)
      try {
        process.kill(w.pid, 'SIGTERM');
      } catch {
        // Gone.
      }
    await Promise.all(workers.map((w) => w.exited));
    const left = await leftoverIn(world.dir);
    if (left.length > 0) {
      killAll(left);
      record(`left running after the workers stopped: ${left.map((p) => p.cmdline).join(' | ')}`);
    }
    await store.close();
    await admin(adminUrl, `DROP DATABASE IF EXISTS ${world.name} WITH (FORCE)`).catch(() => undefined);
  }
}
