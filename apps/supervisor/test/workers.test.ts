import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it, onTestFinished } from 'vitest';
import { git } from '@keel/testing';
import { systemClock } from '../src/clock.js';
import { createPostgresTaskStore } from '../src/store/postgresTaskStore.js';
import { openQueue, runWorker } from '../src/workers/worker.js';
import type { TaskStore } from '../src/store/taskStore.js';
import { freshDatabase, sql, testDatabaseUrl } from './postgres.js';
import { createHarness, type Harness } from './helpers.js';
import {
  allProcs,
  below,
  keel,
  present,
  printedKeel,
  reapAfter,
  startKeel,
  until,
  type KeelProcess,
} from './processes.js';

/**
 * Several `keel worker` processes on one PostgreSQL store. Needs KEEL_TEST_DATABASE_URL (.ci/run
 * starts a server); under CI its absence fails the run.
 */
const databaseUrl = testDatabaseUrl;

/** A task that commits, sits in a test run for `sleepSeconds`, then commits again and hands in. */
const taskFile = (name: string, sleepSeconds: number) => ({
  type: 'workers',
  title: name,
  description: 'commit, test, commit',
  mode: 'single',
  deploy: null,
  tests: null,
  playbook: {
    coding: [
      [
        { call: 'write_file', args: { path: `${name}-a.txt`, content: 'a\n' } },
        { call: 'git_add', args: { paths: [`${name}-a.txt`] } },
        { call: 'git_commit', args: { message: `${name}: first` } },
        { call: 'run_tests', args: { files: [`test/sleep-${sleepSeconds}.test.mjs`] } },
        { call: 'write_file', args: { path: `${name}-b.txt`, content: 'b\n' } },
        { call: 'git_add', args: { paths: [`${name}-b.txt`] } },
        { call: 'git_commit', args: { message: `${name}: second` } },
        { submit: { version: 'change.v1', summary: 'two commits', files: [], commit: null } },
      ],
    ],
  },
});

async function setup(): Promise<{ h: Harness; url: string; store: TaskStore; env: NodeJS.ProcessEnv }> {
  const url = await freshDatabase('keel_workers');
  const sleeper = (s: number) =>
    `import { test } from 'node:test';\n\ntest('sleeps ${s} s', async () => {\n  await new Promise((resolve) => setTimeout(resolve, ${s * 1000}));\n});\n`;
  const h = await createHarness({
    files: {
      'package.json': `${JSON.stringify({ name: 'w', private: true, type: 'module', scripts: { test: 'node --test' } })}\n`,
      'test/sleep-4.test.mjs': sleeper(4),
      'test/sleep-600.test.mjs': sleeper(600),
    },
  });
  reapAfter(h.dir);
  const store = await createPostgresTaskStore(url);
  onTestFinished(() => store.close());
  return { h, url, store, env: { KEEL_DATABASE_URL: url } };
}

async function submit(
  h: Harness,
  env: NodeJS.ProcessEnv,
  name: string,
  sleepSeconds: number,
): Promise<string> {
  const file = path.join(h.dir, `${name}.task.yaml`);
  await writeFile(file, stringify(taskFile(name, sleepSeconds)));
  const result = await keel(['submit', file], h.dir, env);
  expect(result.stderr).toBe('');
  expect(result.code).toBe(0);
  return result.stdout.trim();
}

const startWorkers = (h: Harness, env: NodeJS.ProcessEnv, n: number): KeelProcess[] =>
  Array.from({ length: n }, (_, i) =>
    startKeel(['worker', '--id', `w${i + 1}`, '--quiet', '--heartbeat-ms', '500'], h.dir, env),
  );

describe.skipIf(databaseUrl === undefined)('keel worker on PostgreSQL', () => {
  it('three workers; kill -9 of the one holding a task → another resumes it with no commit made twice', async () => {
    const { h, store, env } = await setup();
    const workers = startWorkers(h, env, 3);
    const id = await submit(h, env, 'alpha', 4);
    // The holder is inside the test run: the first commit is recorded, the second not yet.
    const owner = await until('a worker to be inside the test run', async () => {
      const calls = await store.listToolCalls(id);
      const o = await store.getOwner(id);
      return calls.some((c) => c.tool === 'git_commit') && o !== null && o.worker !== undefined
        ? o
        : undefined;
    });
    const holder = workers.find((w) => w.pid === owner.pid)!;
    expect(holder).toBeDefined();
    const holderTree = below(holder.pid);
    process.kill(holder.pid, 'SIGKILL');
    await holder.exited;
    for (const p of holderTree) if (present(p)) process.kill(p.pid, 'SIGKILL');

    const done = await until(
      'another worker to finish the task',
      async () => {
        const task = await store.getTask(id);
        return task?.status === 'succeeded' ? task : undefined;
      },
      180_000,
    );
    expect(done.run?.steps).toBe(8);
    const taker = await store.listEvents(id);
    expect(taker.filter((e) => e.type === 'task_resumed').length).toBe(1);
    expect((await git(h.repo.dir, ['log', '--format=%s'])).trim().split('\n')).toEqual([
      'alpha: second',
      'alpha: first',
      'initial',
    ]);
    // Every successful call is recorded once; no model step was recorded twice.
    const steps = (await store.listModelCalls(id)).map((c) => c.step);
    expect(steps).toEqual([...new Set(steps)].sort((a, b) => a - b));
    expect(steps).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    for (const w of workers) if (w !== holder) w.child.kill('SIGTERM');
  }, 240_000);

  it('split brain: the owner stalled past its heartbeat at step 3 and then woken stops at its next call; the task ends once, one model call per step', async () => {
    const { h, store, env } = await setup();
    const workers = startWorkers(h, env, 2);
    const id = await submit(h, env, 'stall', 4);
    const owner = await until('a worker to have committed at step 3', async () => {
      const calls = await store.listToolCalls(id);
      const o = await store.getOwner(id);
      return calls.some((c) => c.tool === 'git_commit' && c.step === 3) && o?.worker !== undefined
        ? o
        : undefined;
    });
    const stalled = workers.find((w) => w.pid === owner.pid)!;
    const other = workers.find((w) => w !== stalled)!;
    process.kill(stalled.pid, 'SIGSTOP');
    // Stalled until the other worker's claim has landed: its heartbeat went stale, the task is taken over.
    await until(
      'the other worker to take the task over',
      async () => ((await store.getOwner(id))?.pid === other.pid ? true : undefined),
      60_000,
    );
    process.kill(stalled.pid, 'SIGCONT');
    await until(
      'the task to end',
      async () => ((await store.getTask(id))?.status === 'succeeded' ? true : undefined),
      180_000,
    );
    // The woken worker has said how its run of the task ended.
    const said = await until(
      'the woken worker to report on the task',
      () => stalled.stderrLines().find((l) => l.startsWith(`[worker] ${id}: `) && !l.endsWith(': starting')),
      60_000,
    );
    expect(said).toMatch(new RegExp(`^\\[worker\\] ${id}: fenced — `));
    const events = await store.listEvents(id);
    expect(events.filter((e) => e.type === 'task_finished').map((e) => e.data)).toEqual([
      { status: 'succeeded', outcome: { message: '1 coding round(s), no tests, no deploy' } },
    ]);
    expect(events.filter((e) => e.type === 'task_resumed').length).toBe(1);
    const steps = (await store.listModelCalls(id)).map((c) => c.step);
    expect(steps).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect((await store.getTask(id))?.run?.steps).toBe(8);
    expect((await git(h.repo.dir, ['log', '--format=%s'])).trim().split('\n')).toEqual([
      'stall: second',
      'stall: first',
      'initial',
    ]);
    // Nobody owns the ended task: the woken worker never wrote its owner record back.
    expect(await store.getOwner(id)).toBe(null);
    for (const w of workers) w.child.kill('SIGTERM');
  }, 240_000);

  it('one worker with --concurrency 2 runs two tasks at once; killing one leaves the other and its tool process running', async () => {
    const { h, store, env } = await setup();
    const worker = startKeel(
      ['worker', '--id', 'solo', '--quiet', '--heartbeat-ms', '500', '--concurrency', '2'],
      h.dir,
      env,
    );
    const [a, b] = [await submit(h, env, 'c1', 600), await submit(h, env, 'c2', 600)];
    const sleeping = (id: string) =>
      until(`task ${id} to be inside its test run`, async () => {
        const owner = await store.getOwner(id);
        const inside = (await store.listToolCalls(id)).some((c) => c.tool === 'git_commit');
        const sleeper = owner?.serverPids
          .flatMap((pid) => below(pid))
          .find((p) => p.cmdline.includes('sleep-600'));
        return inside && owner !== null && sleeper !== undefined ? { owner, sleeper } : undefined;
      });
    const [inA, inB] = [await sleeping(a!), await sleeping(b!)];
    // Both at once, in the one worker process, each with servers of its own.
    expect([inA.owner.pid, inB.owner.pid]).toEqual([worker.pid, worker.pid]);
    expect(inA.owner.serverPids.filter((pid) => inB.owner.serverPids.includes(pid))).toEqual([]);

    const killed = await keel(['kill', a!, '--as', 'ops'], h.dir, env);
    expect(killed.code).toBe(0);
    expect((await store.getTask(a!))?.status).toBe('killed');
    await until("task A's sleeping test to go", () => (present(inA.sleeper) ? undefined : true), 30_000);
    expect(present(inB.sleeper)).toBe(true);
    expect((await store.getTask(b!))?.status).toBe('running');
    expect(worker.child.exitCode).toBe(null);
    worker.child.kill('SIGTERM');
    await worker.exited;
    expect((await store.getTask(b!))?.status).toBe('killed');
    await until("task B's sleeping test to go with its worker", () =>
      present(inB.sleeper) ? undefined : true,
    );
  });

  it("a kill its worker does not answer in time reaps only that task: the worker, its other task and that task's tool process live on", async () => {
    const { h, store, env } = await setup();
    const worker = startKeel(
      ['worker', '--id', 'solo', '--quiet', '--heartbeat-ms', '500', '--concurrency', '2'],
      h.dir,
      env,
    );
    const [a, b] = [await submit(h, env, 'f1', 600), await submit(h, env, 'f2', 600)];
    const sleeping = (id: string) =>
      until(`task ${id} to be inside its test run`, async () => {
        const owner = await store.getOwner(id);
        const sleeper = owner?.serverPids
          .flatMap((pid) => below(pid))
          .find((p) => p.cmdline.includes('sleep-600'));
        return owner !== null && sleeper !== undefined ? { owner, sleeper } : undefined;
      });
    const [inA, inB] = [await sleeping(a!), await sleeping(b!)];
    const serversA = inA.owner.serverPids.flatMap((pid) => {
      const p = allProcs().find((q) => q.pid === pid);
      return p === undefined ? [] : [p];
    });
    // The worker cannot answer: the kill takes its forced path.
    process.kill(worker.pid, 'SIGSTOP');
    const killed = await keel(['kill', a!, '--as', 'ops'], h.dir, env);
    process.kill(worker.pid, 'SIGCONT');
    expect(killed.code).toBe(0);
    expect(killed.stdout.trim()).toMatch(
      new RegExp(
        `^${a}: killed \\(process ${worker.pid} did not answer; killed the task's \\d+ process\\(es\\), not the process itself, \\d+ ms\\)$`,
      ),
    );
    expect((await store.getTask(a!))?.status).toBe('killed');
    await until("task A's servers and sleeping test to go", () =>
      [inA.sleeper, ...serversA].some(present) ? undefined : true,
    );
    expect(worker.child.exitCode).toBe(null);
    expect(worker.child.signalCode).toBe(null);
    expect(present(inB.sleeper)).toBe(true);
    expect((await store.getTask(b!))?.status).toBe('running');
    expect((await store.getOwner(b!))?.pid).toBe(worker.pid);
    // The worker's run of A stops without a write: A ends once, killed.
    expect((await store.listEvents(a!)).filter((e) => e.type === 'task_finished').map((e) => e.data)).toEqual(
      [expect.objectContaining({ status: 'killed', forced: true })],
    );
    worker.child.kill('SIGTERM');
    await worker.exited;
  }, 240_000);

  it("the server ends the worker's LISTEN connection: the worker lives on, listens again, and a kill still reaches its task", async () => {
    const { h, url, store, env } = await setup();
    const worker = startKeel(['worker', '--id', 'solo', '--quiet', '--heartbeat-ms', '500'], h.dir, env);
    const id = await submit(h, env, 'listen', 600);
    await until('the task to be inside its test run', async () =>
      (await store.listToolCalls(id)).some((c) => c.tool === 'git_commit') ? true : undefined,
    );
    const listeners = async () =>
      (
        await sql<{ pid: number }>(
          url,
          "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN keel_kill' AND pid <> pg_backend_pid()",
        )
      ).map((r) => r.pid);
    const [first] = await until('the worker to listen', async () => {
      const found = await listeners();
      return found.length === 1 ? found : undefined;
    });
    // As a failover or an administrator would: the server ends that session.
    expect(await sql(url, 'SELECT pg_terminate_backend($1) AS ended', [first])).toEqual([{ ended: true }]);
    const [second] = await until('the worker to listen again', async () => {
      const found = await listeners();
      return found.length === 1 && found[0] !== first ? found : undefined;
    });
    expect(second).not.toBe(first);
    expect([worker.child.exitCode, worker.child.signalCode]).toEqual([null, null]);
    const killed = await keel(['kill', id, '--as', 'ops'], h.dir, env);
    expect(killed.code).toBe(0);
    expect((await store.getTask(id))?.status).toBe('killed');
    expect([worker.child.exitCode, worker.child.signalCode]).toEqual([null, null]);
    worker.child.kill('SIGTERM');
    await worker.exited;
  }, 240_000);

  it('a worker told to stop while it is still starting stops, instead of taking tasks until killed', async () => {
    const { h, url, store } = await setup();
    const boss = await openQueue(url);
    onTestFinished(() => boss.stop({ graceful: false }));
    // SIGTERM arrived while keel was still loading and connecting: the stop has fired before the
    // worker waits for it.
    const stop = new AbortController();
    stop.abort(new Error('SIGTERM'));
    const lines: string[] = [];
    // The test's timeout is the hang guard: before the fix this never returned.
    await runWorker({
      loaded: h.loaded,
      store,
      boss,
      id: 'early',
      concurrency: 1,
      warmServers: false,
      heartbeatMs: 500,
      reapMs: 500,
      log: (line) => lines.push(line),
      stop: stop.signal,
      env: process.env,
      tracer: undefined,
      clock: systemClock,
    });
    expect(lines).toEqual([expect.stringMatching(/^worker early on .+: taking tasks from keel-tasks$/)]);
  }, 60_000);

  it('a queued task whose run job was lost (taken by a worker that died before it claimed the task) still runs', async () => {
    const { h, url, store, env } = await setup();
    const id = await submit(h, env, 'lost', 4);
    // What a worker killed right after taking the job leaves: the job active (for 23 h), the task queued, unowned.
    const taken = await sql(
      url,
      `UPDATE keel_queue.job SET state = 'active', started_on = now() WHERE data->>'taskId' = $1 RETURNING id`,
      [id],
    );
    expect(taken).toHaveLength(1);
    const worker = startKeel(['worker', '--id', 'w1', '--heartbeat-ms', '500'], h.dir, env);
    const done = await until(
      'the task to run anyway',
      async () => {
        const task = await store.getTask(id);
        return task?.status === 'succeeded' ? task : undefined;
      },
      120_000,
    );
    expect(done.run?.steps).toBe(8);
    expect(worker.stderrLines().filter((l) => l.startsWith(`[worker] ${id}: `))[0]).toBe(
      `[worker] ${id}: starting`,
    );
    worker.child.kill('SIGTERM');
    await worker.exited;
  }, 240_000);

  it('a task submitted during the global stop waits, and runs after keel resume-all', async () => {
    const { h, store, env } = await setup();
    const worker = startKeel(['worker', '--id', 'w1', '--heartbeat-ms', '500', '--quiet'], h.dir, env);
    const stopped = await keel(['kill', '--all', '--as', 'ops'], h.dir, env);
    expect(stopped.code).toBe(0);
    const id = await submit(h, env, 'held', 4);
    await until('the worker to hold the task back', () =>
      worker.stderrLines().find((l) => l.startsWith(`[worker] ${id}: `)),
    );
    expect(worker.stderrLines().filter((l) => l.startsWith(`[worker] ${id}: `))).toEqual([
      `[worker] ${id}: not started: a global stop is in force; keel resume-all queues it again`,
    ]);
    expect((await store.getTask(id))?.status).toBe('queued');
    const stop = await store.getGlobalStop();
    const lifted = await keel(['resume-all'], h.dir, env);
    expect(lifted.code).toBe(0);
    expect(lifted.stdout.trim().split('\n')).toEqual([
      `global stop lifted (set by ops at ${stop?.at})`,
      '1 queued task(s) queued to run again',
    ]);
    const done = await until(
      'the held task to finish',
      async () => {
        const task = await store.getTask(id);
        return task?.status === 'succeeded' ? task : undefined;
      },
      120_000,
    );
    expect(done.run?.steps).toBe(8);
    worker.child.kill('SIGTERM');
    await worker.exited;
  }, 240_000);

  it('kill --all with tasks on three workers: every task killed, no tool process left, the workers live on', async () => {
    const { h, store, env } = await setup();
    const workers = startWorkers(h, env, 3);
    const ids = [
      await submit(h, env, 'k1', 600),
      await submit(h, env, 'k2', 600),
      await submit(h, env, 'k3', 600),
    ];
    await until('three tasks inside their test runs on three workers', async () => {
      const owners = await Promise.all(ids.map((id) => store.getOwner(id)));
      const inside = await Promise.all(
        ids.map(async (id) => (await store.listToolCalls(id)).some((c) => c.tool === 'git_commit')),
      );
      // The commit is recorded before the test run starts: wait for each worker's sleeping test itself.
      const sleeping = workers.every((w) => below(w.pid).some((p) => p.cmdline.includes('sleep-600')));
      return inside.every(Boolean) && sleeping && new Set(owners.map((o) => o?.pid)).size === 3
        ? true
        : undefined;
    });
    const toolsBefore = workers.flatMap((w) => below(w.pid).filter((p) => p.cmdline.includes('sleep-600')));
    expect(toolsBefore.length).toBeGreaterThanOrEqual(3);
    const killed = await keel(['kill', '--all', '--as', 'ops'], h.dir, env);
    expect(killed.code).toBe(0);
    expect(killed.stdout.trim().split('\n').at(-1)).toBe(
      `global stop in force: no task starts until \`${printedKeel} resume-all\` (3 task(s) stopped)`,
    );
    for (const id of ids) expect((await store.getTask(id))?.status).toBe('killed');
    await until(
      'every sleeping test to be gone',
      () => (toolsBefore.some(present) ? undefined : true),
      30_000,
    );
    expect(workers.every((w) => w.child.exitCode === null)).toBe(true);
    for (const w of workers) w.child.kill('SIGTERM');
  });
});
