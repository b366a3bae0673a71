import type { TaskWriter } from '../store/taskStore.js';

const settled = () => undefined;

/**
 * The owner's writes for a run whose start is still being recorded (its owner's server pids, the
 * starting state, `task_started`): each write waits for that start and for the write asked before
 * it, so the task's log reads in the order the run asked — `task_started` first — whatever the
 * store's connections do. A start that failed fails every write with its error: nothing of the run
 * lands without its start. A write that failed does not fail the next (its caller saw it). The
 * heartbeat and the owner's release are not queued: they go to the owner record at once.
 */
export function writesAfterStart(inner: TaskWriter, started: Promise<unknown>): TaskWriter {
  let last: Promise<unknown> = Promise.resolve();
  const inOrder = <T>(write: () => Promise<T>): Promise<T> => {
    const result = Promise.all([started, last]).then(write);
    last = result.then(settled, settled);
    return result;
  };
  return {
    taskId: inner.taskId,
    epoch: inner.epoch,
    appendEvent: (...args) => inOrder(() => inner.appendEvent(...args)),
    recordModelCall: (record) => inOrder(() => inner.recordModelCall(record)),
    recordToolCall: (record) => inOrder(() => inner.recordToolCall(record)),
    updateTask: (patch) => inOrder(() => inner.updateTask(patch)),
    endRun: (...args) => inOrder(() => inner.endRun(...args)),
    requestApproval: (...args) => inOrder(() => inner.requestApproval(...args)),
    consumeApproval: (...args) => inOrder(() => inner.consumeApproval(...args)),
    updateOwner: (patch) => inOrder(() => inner.updateOwner(patch)),
    renewOwner: (heartbeatAt) => inner.renewOwner(heartbeatAt),
    releaseOwner: () => inner.releaseOwner(),
  };
}
