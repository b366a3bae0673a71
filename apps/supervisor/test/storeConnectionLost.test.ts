import { readFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { resumeTask, runTask } from '../src/engine/runTask.js';
import { createPostgresTaskStore } from '../src/store/postgresTaskStore.js';
import { createHarness, task } from './helpers.js';
import { freshDatabase, testDatabaseUrl } from './postgres.js';

// The chaos campaign (tier C, `pg_terminate_backend`) ended a task `error` with "terminating
// connection due to administrator command": a record write lost its connection, and the run took
// that for the task's own failure. Whether such a write landed is unknown; the run must stop as a
// crash would and be resumed from what the store holds.

const spec = () =>
  task({
    mode: 'single',
    tests: null,
    deploy: null,
    playbook: {
      coding: [
        [
          { call: 'write_file', args: { path: 'a.txt', content: 'a\n' } },
          { call: 'write_file', args: { path: 'b.txt', content: 'b\n' } },
          { submit: { version: 'change.v1', summary: 'two files', files: [], commit: null } },
        ],
      ],
    },
  });

/**
 * Locks `table` from another session, then ends the session whose statement matching `waiting`
 * (ILIKE) queues behind that lock — as an administrator's pg_terminate_backend (or a failover)
 * ends a session mid-statement — and releases the lock. Resolves once the lock is held; `ended` then
 * resolves to how many sessions it ended.
 */
async function endSessionWaitingOn(
  url: string,
  table: string,
  waiting: string,
): Promise<{ ended: Promise<number> }> {
  const admin = async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    onTestFinished(() => client.end().catch(() => undefined));
    return client;
  };
  const locker = await admin();
  await locker.query('BEGIN');
  await locker.query(`LOCK TABLE ${table} IN SHARE MODE`);
  const observer = await admin();
  const ended = (async () => {
    for (let polls = 0; polls < 1500; polls++) {
      const { rows } = await observer.query<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE $1`,
        [waiting],
      );
      if (rows.length > 0) {
        await observer.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [
          rows.map((r) => r.pid),
        ]);
        await locker.query('ROLLBACK');
        return rows.length;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await locker.query('ROLLBACK');
    return 0;
  })();
  return { ended };
}

describe.skipIf(testDatabaseUrl === undefined)('a task store connection lost under a write', () => {
  it('stops the run where a crash would, keeps the owner record, and the resume finishes each step once', async () => {
    const url = await freshDatabase();
    const store = await createPostgresTaskStore(url);
    onTestFinished(() => store.close());
    const h = await createHarness({});
    // The first tool call's record waits behind a lock on tool_calls; its session is then ended.
    const { ended: terminated } = await endSessionWaitingOn(url, 'tool_calls', '%tool_calls%');

    const first = runTask({ loaded: h.loaded, store, env: process.env, task: spec() });
    await expect(first).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      message: expect.stringMatching(
        // node-postgres reports the server's FATAL, or the socket it closed, whichever it reads first.
        /^task t-\S+: the task store's connection was lost: (terminating connection due to administrator command|Connection terminated unexpectedly); this run stopped where it stood/,
      ),
    });
    expect(await terminated).toBe(1);
    const [stopped] = await store.listTasks({});
    // Not ended: no `error`, no task_finished; the owner record stays for a takeover to find.
    expect(stopped?.status).toBe('running');
    expect((await store.listEvents(stopped!.id)).filter((e) => e.type === 'task_finished')).toEqual([]);
    expect((await store.getOwner(stopped!.id))?.pid).toBe(process.pid);
    expect((await store.listModelCalls(stopped!.id)).map((c) => c.step)).toEqual([1]);
    expect(await store.listToolCalls(stopped!.id)).toEqual([]);
    expect(readFileSync(path.join(h.repo.dir, 'a.txt'), 'utf8')).toBe('a\n');

    const resumed = await resumeTask({
      loaded: h.loaded,
      store,
      env: process.env,
      taskId: stopped!.id,
      reason: 'the store connection was lost',
    });
    expect([resumed.run.status, resumed.run.steps]).toEqual(['succeeded', 3]);
    // No model call asked again; the interrupted write_file replayed under its key, not run twice.
    expect((await store.listModelCalls(stopped!.id)).map((c) => c.step)).toEqual([1, 2, 3]);
    expect((await store.listToolCalls(stopped!.id)).map((c) => c.tool)).toEqual(['write_file', 'write_file']);
    expect(readFileSync(path.join(h.repo.dir, 'b.txt'), 'utf8')).toBe('b\n');
    expect(await store.getOwner(stopped!.id)).toBeNull();
    expect(await store.verifyEvents()).toMatchObject({ ok: true });
  });
  // Chaos tier C, seed 20261214, lane 0 round 39: a worker claimed a queued task, then lost its
  // connection as it moved the task to `starting`. The task stayed `queued` with an owner for good: a
  // run job needs no owner, a takeover needs `starting` or `running`.
  it('a queued task is claimed and moved to starting in one write: a connection lost there leaves it queued, unowned, to run again', async () => {
    const url = await freshDatabase();
    const store = await createPostgresTaskStore(url);
    onTestFinished(() => store.close());
    const h = await createHarness({});
    const queued = task({ ...spec() });
    await store.createTask({
      id: 't-queued',
      type: queued.type,
      title: queued.title,
      mode: queued.mode,
      status: 'queued',
      createdAt: new Date().toISOString(),
      endedAt: null,
      configHash: h.loaded.hash,
      spec: queued,
      startingState: null,
      run: null,
    });
    // The status change waits behind a lock on tasks; its session is then ended.
    const { ended: terminated } = await endSessionWaitingOn(url, 'tasks', 'UPDATE tasks%');
    const run = () =>
      runTask({ loaded: h.loaded, store, env: process.env, taskId: 't-queued', task: queued });
    await expect(run()).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      message: expect.stringMatching(/^task t-queued: the task store's connection was lost: /),
    });
    expect(await terminated).toBe(1);
    // Neither claimed nor started: a worker's reaper queues a run job for a queued task with no owner.
    expect([(await store.getTask('t-queued'))?.status, await store.getOwner('t-queued')]).toEqual([
      'queued',
      null,
    ]);
    const again = await run();
    expect([again.run.status, again.run.steps]).toEqual(['succeeded', 3]);
    expect((await store.listToolCalls('t-queued')).map((c) => c.tool)).toEqual(['write_file', 'write_file']);
    expect(await store.getOwner('t-queued')).toBeNull();
  });
});
