import { hostname } from 'node:os';
import { KeelError } from '@keel/kit/core';
import pg from 'pg';
import PgBoss from 'pg-boss';
import type { LoadedConfig } from '../config/load.js';
import { isStale, staleHeartbeatMs } from '../control/kill.js';
import { hasProcfs, isSameProcess, processStartTime } from '../control/processes.js';
import {
  resumeTask,
  runTask,
  type KillSignals,
  type RunTaskOptions,
  type TaskOutcome,
} from '../engine/runTask.js';
import { createServerPool, freshServers } from '../mcp/pool.js';
import { createHttpFetch } from '../models/httpFetch.js';
import type { TaskOwner, TaskStore } from '../store/taskStore.js';
import { parseTaskFile } from '../task/taskFile.js';
import type { Clock } from '../clock.js';

export const taskQueue = 'keel-tasks';

/** A queued job: run a submitted task, or resume one whose worker died. */
export interface TaskJob {
  taskId: string;
  action: 'run' | 'resume';
  reason: string;
}

/**
 * The queue on the shared PostgreSQL database, through pg-boss 10 (the line that runs on Node
 * 20.19): jobs are fetched with SKIP LOCKED, so each goes to one worker. A job is one run of a task;
 * a task that waits for a human completes its job, and its approval resumes it.
 */
export async function openQueue(url: string): Promise<PgBoss> {
  const boss = new PgBoss({ connectionString: url, schema: 'keel_queue', max: 4 });
  boss.on('error', () => undefined);
  // Workers and submitters starting at once would race to create the queue's tables (PostgreSQL
  // reports a deadlock): one at a time, under an advisory lock.
  const lock = new pg.Client({ connectionString: url });
  await lock.connect();
  try {
    await lock.query('SELECT pg_advisory_lock(775412)');
    await boss.start();
    if ((await boss.getQueue(taskQueue)) === null)
      await boss.createQueue(taskQueue, { name: taskQueue, retryLimit: 0, expireInSeconds: 23 * 3600 });
  } finally {
    await lock.query('SELECT pg_advisory_unlock(775412)').catch(() => undefined);
    await lock.end();
  }
  return boss;
}

export async function enqueue(
  boss: PgBoss,
  job: TaskJob,
  singletonKey?: string,
  singletonSeconds?: number,
): Promise<string | null> {
  return boss.send(taskQueue, job, {
    ...(singletonKey === undefined ? {} : { singletonKey }),
    ...(singletonSeconds === undefined ? {} : { singletonSeconds }),
  });
}

export interface WorkerOptions extends Pick<RunTaskOptions, 'env' | 'tracer' | 'progress'> {
  clock: Clock;
  loaded: LoadedConfig;
  store: TaskStore;
  boss: PgBoss;
  id: string;
  /** Tasks this worker runs at once. */
  concurrency: number;
  /**
   * Whether a task's servers, when it ends cleanly, stay up for the worker's next task with the same
   * launch, instead of a process start per server per task. Off for servers that keep state between calls.
   */
  warmServers: boolean;
  heartbeatMs: number;
  /** How often it looks for tasks whose worker died. */
  reapMs: number;
  log: (line: string) => void;
  /** Aborted to stop the worker: running tasks are cancelled and end `killed`. */
  stop: AbortSignal;
}

/**
 * `keel worker`: takes tasks from the queue, runs each under the same engine as `keel run` with a
 * heartbeat in its owner record, hears kills from any machine (LISTEN), and takes over tasks whose
 * worker's heartbeat went stale — resuming them from their last completed step, with no repeated
 * side effect and no repeated model call.
 */
export async function runWorker(options: WorkerOptions): Promise<void> {
  const { store, boss, log } = options;
  const rings = new Set<() => void>();
  const killSignals: KillSignals = {
    subscribe(listener) {
      rings.add(listener);
      return () => rings.delete(listener);
    },
  };
  const unlisten = await store.listenForKills?.(() => {
    for (const ring of rings) ring();
  });
  const running = new Set<Promise<unknown>>();
  const pool = options.warmServers ? createServerPool({ maxIdle: options.concurrency }) : undefined;
  // One for all the worker's tasks: a provider's connection stays open from one task to the next.
  const fetch = createHttpFetch();
  const report = (taskId: string, { run, fenced }: TaskOutcome) =>
    log(
      `${taskId}: ${fenced === undefined ? run.status : 'fenced'} — ${fenced?.message ?? run.outcome.message}`,
    );
  const handle = async (job: TaskJob) => {
    const task = await store.getTask(job.taskId);
    if (task === undefined) return log(`job for unknown task ${job.taskId}: dropped`);
    const common = {
      loaded: options.loaded,
      store,
      env: options.env,
      clock: options.clock,
      tracer: options.tracer,
      kill: options.stop,
      killSignals,
      worker: { id: options.id, heartbeatMs: options.heartbeatMs },
      servers: pool ?? freshServers,
      fetch,
      ...(options.progress === undefined ? {} : { progress: options.progress }),
    };
    if (job.action === 'run' && task.status === 'queued') {
      // Its job completes and the task stays queued: lifting the stop queues it again.
      if ((await store.getGlobalStop()) !== null)
        return log(`${task.id}: not started: a global stop is in force; keel resume-all queues it again`);
      log(`${task.id}: starting`);
      return report(
        task.id,
        await runTask({
          ...common,
          taskId: task.id,
          task: parseTaskFile(task.spec, `task ${task.id}`),
        }),
      );
    }
    if (job.action === 'resume' && (task.status === 'running' || task.status === 'starting')) {
      // The owner may have come back (a slow heartbeat, not a dead worker) since the reaper looked,
      // and another worker may be taking it over right now: only the one whose claim lands resumes.
      const owner = await store.getOwner(task.id);
      if (owner !== null && !ownerGone(owner, options.clock.now()))
        return log(`${task.id}: its worker ${owner.worker ?? owner.pid} is alive again; not resumed`);
      const claimed = await store.claimOwner(task.id, owner, {
        pid: process.pid,
        startTime: processStartTime(process.pid) ?? '',
        host: hostname(),
        serverPids: [],
        worker: options.id,
        heartbeatAt: new Date(options.clock.now()).toISOString(),
      });
      if (!claimed.ok) return log(`${task.id}: another worker took it over first`);
      log(`${task.id}: resuming (${job.reason})`);
      return report(
        task.id,
        await resumeTask({ ...common, taskId: task.id, epoch: claimed.epoch, reason: job.reason }),
      );
    }
    return log(`${task.id}: ${job.action} skipped, the task is ${task.status}`);
  };
  // One fetch loop per slot: pg-boss hands a loop its next job only when its handler returned.
  for (let slot = 0; slot < options.concurrency; slot++)
    await boss.work<TaskJob>(taskQueue, { batchSize: 1, pollingIntervalSeconds: 0.5 }, async ([job]) => {
      if (job === undefined) return;
      // A run that stops on its own error (fenced, the store's connection lost) ends its job here,
      // said in the log; the task is left for whoever holds it now, or for a takeover.
      const work = handle(job.data).catch((error: unknown) =>
        log(
          `${job.data.taskId}: ${(error as Error).message}` +
            (error instanceof KeelError && error.hint !== undefined ? ` (${error.hint})` : ''),
        ),
      );
      running.add(work);
      try {
        await work;
      } finally {
        running.delete(work);
      }
    });
  const reaper = setInterval(
    () => void reap(options).catch((error: unknown) => log(`reaper: ${(error as Error).message}`)),
    options.reapMs,
  );
  log(`worker ${options.id} on ${hostname()}: taking tasks from ${taskQueue}`);
  // A stop that came while the worker was starting (SIGTERM during start-up) has fired already: an
  // abort listener added now would never run, and the worker would take tasks until killed.
  await new Promise<void>((resolve) => {
    if (options.stop.aborted) resolve();
    else options.stop.addEventListener('abort', () => resolve(), { once: true });
  });
  clearInterval(reaper);
  await boss.offWork(taskQueue);
  await Promise.allSettled(running);
  await pool?.close();
  await unlisten?.();
}

/**
 * After the global stop is lifted: a run job for every task still queued — submitted while the stop
 * was in force, its job was taken and completed without starting it. A task whose first job is
 * still waiting gets a second one, which finds it started and is skipped. Returns how many.
 */
export async function requeueQueued(store: TaskStore, boss: PgBoss, liftedStopAt: string): Promise<number> {
  let queued = 0;
  for (const task of await store.listTasks({ status: 'queued', limit: 10_000 }))
    if (
      (await enqueue(
        boss,
        { taskId: task.id, action: 'run', reason: 'the global stop was lifted' },
        `run:${task.id}:${liftedStopAt}`,
      )) !== null
    )
      queued++;
  return queued;
}

/** A worker is gone when its process on this machine has exited, or its heartbeat is stale. */
function ownerGone(owner: TaskOwner, now: number): boolean {
  // Without /proc (not Linux) only the heartbeat tells: a live owner would look gone by its pid.
  if (owner.host === hostname() && hasProcfs() && !isSameProcess(owner.pid, owner.startTime)) return true;
  return isStale(owner, now);
}

/** How often, at most, a queued task whose run job may have been lost gets another one. */
const lostJobSeconds = 60;

/**
 * Queues a resume for every running (or starting) task whose worker stopped beating, one job per
 * dead owner; and another run job for a task still queued, unowned, past the heartbeat's grace —
 * its job can be lost (failed on a dropped connection, or taken by a worker that died before it
 * claimed the task), and nothing else would start it. At most one such job per task a minute; a
 * job that finds its task started is skipped, and of two that find it queued one claim wins.
 */
async function reap(options: WorkerOptions): Promise<void> {
  if ((await options.store.getGlobalStop()) === null)
    for (const task of await options.store.listTasks({ status: 'queued', limit: 1000 })) {
      if (options.clock.now() - Date.parse(task.createdAt) <= staleHeartbeatMs) continue;
      if ((await options.store.getOwner(task.id)) !== null) continue;
      await enqueue(
        options.boss,
        { taskId: task.id, action: 'run', reason: 'still queued: its run job may have been lost' },
        `lost-run:${task.id}`,
        lostJobSeconds,
      );
    }
  const open = await Promise.all(
    (['starting', 'running'] as const).map((status) => options.store.listTasks({ status, limit: 1000 })),
  );
  for (const task of open.flat()) {
    const owner = await options.store.getOwner(task.id);
    if (owner === null || owner.worker === undefined || !ownerGone(owner, options.clock.now())) continue;
    const queued = await enqueue(
      options.boss,
      {
        taskId: task.id,
        action: 'resume',
        reason: `worker ${owner.worker} stopped beating at ${owner.heartbeatAt}`,
      },
      `resume:${task.id}:${owner.worker}:${owner.heartbeatAt}`,
    );
    if (queued !== null) options.log(`${task.id}: its worker ${owner.worker} is gone; queued a resume`);
  }
}
