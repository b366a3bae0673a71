import { hostname } from 'node:os';
import type { TaskStatus } from '@keel/contracts';
import type { Clock } from '../clock.js';
import type { TaskOwner, TaskStore } from '../store/taskStore.js';
import { descendants, hasProcfs, isSameProcess, killTree, stillRunning, treeOf } from './processes.js';

export type KillResult =
  | { taskId: string; result: 'acknowledged' | 'forced'; pid: number; killedPids: number[]; ms: number }
  /** No /proc here: the kill is recorded (the owner stops at its next call) but nothing was signalled or forced. */
  | { taskId: string; result: 'requested'; pid: number; ms: number }
  | { taskId: string; result: 'not_running' | 'already_ended'; status: TaskStatus; ms: number };

const ended: ReadonlySet<TaskStatus> = new Set(['succeeded', 'failed', 'limit', 'killed', 'error']);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A worker whose heartbeat is older than this is taken for dead. */
export const staleHeartbeatMs = 10_000;

export const isStale = (owner: TaskOwner, now: number) =>
  owner.heartbeatAt !== undefined && now - Date.parse(owner.heartbeatAt) > staleHeartbeatMs;

/**
 * Waits for the owner to acknowledge the kill: it releases its owner record once it has stopped (its
 * writes are fenced, so it records nothing), or the task ended on its own first.
 */
async function waitForRelease(
  store: TaskStore,
  taskId: string,
  owner: TaskOwner,
  ackMs: number,
  ms: () => number,
): Promise<boolean> {
  while (ms() < ackMs) {
    const { owner: now } = await store.getOwnership(taskId);
    if (now === null || now.pid !== owner.pid || now.startTime !== owner.startTime) return true;
    await sleep(10);
  }
  return false;
}

/**
 * Ends a task that no process runs any more (waiting, escalated, its process died, or it stopped for
 * this kill): through a writer at the kill's epoch, so a later takeover's record is never overwritten.
 */
async function markKilled(
  store: TaskStore,
  taskId: string,
  epoch: number,
  by: string,
  forced: boolean,
  now: Date,
): Promise<void> {
  const task = await store.getTask(taskId);
  if (task === undefined || ended.has(task.status)) return;
  const at = now.toISOString();
  const outcome = {
    message: `killed by ${by}${forced ? ' (its process did not stop in time and was killed)' : ''}`,
  };
  const writer = store.writer(taskId, epoch);
  const event = await writer.appendEvent('task_finished', { status: 'killed', outcome, by, forced }, now);
  if (!event.ok) return;
  await writer.updateTask({
    status: 'killed',
    endedAt: at,
    ...(task.run === null ? {} : { run: { ...task.run, status: 'killed', endedAt: at, outcome } }),
  });
  for (const approval of await store.listApprovals({ taskId, status: 'pending' }))
    await store.decideApproval(approval.id, {
      approve: false,
      by,
      reason: 'the task was killed',
      now,
    });
}

/**
 * Stops one task within the acknowledgement bound: a durable kill request, then a signal to the
 * process that runs it, which cancels its model and tool calls (MCP cancellation reaches the
 * servers, which kill their tool processes) and releases its owner record; the request fenced its
 * writes, so the kill records `killed` here, at the epoch it moved the task to. Without that
 * acknowledgement in `ackMs`, the task's servers and every process below them — tool children in
 * their own groups included — are SIGKILLed, never the process that hosts the task (a worker's
 * other tasks, the console), and the task is recorded `killed` here.
 */
export async function killTask(
  store: TaskStore,
  taskId: string,
  by: string,
  options: { ackMs?: number; reapMs?: number; clock: Clock; procRoot?: string },
): Promise<KillResult> {
  const now = () => new Date(options.clock.now());
  const started = performance.now();
  const ms = () => performance.now() - started;
  const ackMs = options.ackMs ?? 500;
  const task = await store.getTask(taskId);
  if (task === undefined) throw new Error(`no task '${taskId}'`);
  if (ended.has(task.status)) return { taskId, result: 'already_ended', status: task.status, ms: ms() };
  // From here every write of the owner is fenced: it stops at its next call, and records nothing.
  const epoch = await store.requestKill(taskId, now());
  // Workers on other machines hear it from the store (PostgreSQL NOTIFY); a local owner also by signal.
  await store.announceKill?.(taskId);
  const owner = await store.getOwner(taskId);
  if (owner !== null && owner.host === hostname() && !hasProcfs(options.procRoot)) {
    // Without /proc the owner cannot be told from a recycled pid, nor its servers found: nothing is
    // signalled, and the task is not marked killed over a process that may still run it. The
    // request fenced it: it stops at its next call, and a release means it has.
    const released = await waitForRelease(store, taskId, owner, ackMs, ms);
    if (!released) return { taskId, result: 'requested', pid: owner.pid, ms: ms() };
    await markKilled(store, taskId, epoch, by, false, now());
    return { taskId, result: 'acknowledged', pid: owner.pid, killedPids: [], ms: ms() };
  }
  const local = owner !== null && owner.host === hostname() && isSameProcess(owner.pid, owner.startTime);
  if (owner !== null && !local && owner.worker !== undefined && !isStale(owner, options.clock.now())) {
    // A live worker elsewhere: it acknowledges through the store, or it is marked killed here and stops
    // at its next call, when it reads the kill request.
    const acknowledged = await waitForRelease(store, taskId, owner, ackMs, ms);
    await markKilled(store, taskId, epoch, by, !acknowledged, now());
    return acknowledged
      ? { taskId, result: 'acknowledged', pid: owner.pid, killedPids: [], ms: ms() }
      : { taskId, result: 'not_running', status: task.status, ms: ms() };
  }
  const running = local;
  if (!running) {
    await markKilled(store, taskId, epoch, by, false, now());
    return { taskId, result: 'not_running', status: task.status, ms: ms() };
  }
  // Only this task's servers and what they started (another task of the same process is left
  // alone), read before the owner is told: once a server exits, what it left running (a sandbox's
  // inner process, a test's child) is re-parented and could no longer be found below it.
  const tree = treeOf(owner.serverPids);
  try {
    process.kill(owner.pid, 'SIGUSR2');
  } catch {
    // Gone between the check and the signal: the wait below finds out.
  }
  const acknowledged = await waitForRelease(store, taskId, owner, ackMs, ms);
  if (acknowledged) {
    await markKilled(store, taskId, epoch, by, false, now());
    // The owner records `killed` before it closes its servers: cancellation has reached them by
    // now; what of the task's tree is left after a short grace is SIGKILLed.
    const until = ms() + (options.reapMs ?? 100);
    const below = () => {
      const found = new Map(stillRunning(tree).map((p) => [p.pid, p]));
      for (const pid of owner.serverPids) for (const p of descendants(pid)) found.set(p.pid, p);
      return [...found.values()];
    };
    while (below().length > 0 && ms() < until) await sleep(10);
    const killedPids: number[] = [];
    for (const p of below()) {
      try {
        process.kill(p.pgid === p.pid ? -p.pid : p.pid, 'SIGKILL');
        killedPids.push(p.pid);
      } catch {
        // Already gone.
      }
    }
    return { taskId, result: 'acknowledged', pid: owner.pid, killedPids, ms: ms() };
  }
  // The owner hosts more than this task (a worker with --concurrency, the console) and its writes
  // are fenced already: only the task's own servers and what runs below them are killed. Its calls
  // fail with them, and it stops at its next check without a write.
  const killedPids = killTaskProcesses(owner);
  await markKilled(store, taskId, epoch, by, true, now());
  return { taskId, result: 'forced', pid: owner.pid, killedPids, ms: ms() };
}

/**
 * SIGKILLs the task's servers — those the owner record names that are still the owner's own
 * children, so a recycled pid is never hit — and every process below them.
 */
function killTaskProcesses(owner: TaskOwner): number[] {
  const children = descendants(owner.pid).filter((p) => p.ppid === owner.pid);
  return children.filter((p) => owner.serverPids.includes(p.pid)).flatMap((server) => killTree(server.pid));
}

/** The global stop: no new task starts, and every task not yet ended is killed, in parallel. */
export async function killAll(
  store: TaskStore,
  by: string,
  options: { ackMs?: number; clock: Clock },
): Promise<KillResult[]> {
  await store.setGlobalStop({ by, at: new Date(options.clock.now()).toISOString() });
  const open: TaskStatus[] = ['queued', 'starting', 'running', 'waiting', 'escalated'];
  const tasks = (await Promise.all(open.map((status) => store.listTasks({ status, limit: 10_000 })))).flat();
  return Promise.all(tasks.map((task) => killTask(store, task.id, by, options)));
}
