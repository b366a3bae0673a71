/**
 * Per-call time limits on one shared timer. A timer per call costs an allocation and a heap
 * operation on every call, most of which end in microseconds; one ticking watch costs a Set insert.
 * A limit fires at most one tick late, which is nothing next to limits measured in seconds.
 */
export interface DeadlineWatch {
  add(deadline: number, fire: () => void): object;
  remove(handle: object): void;
  close(): void;
}

export function createDeadlineWatch(tickMs = 25): DeadlineWatch {
  const entries = new Map<object, { deadline: number; fire: () => void }>();
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    const now = Date.now();
    for (const [handle, entry] of entries) {
      if (entry.deadline <= now) {
        entries.delete(handle);
        entry.fire();
      }
    }
    // Stop ticking when idle; the next add starts it again.
    if (entries.size === 0 && timer !== undefined) {
      clearInterval(timer);
      timer = undefined;
    }
  };
  return {
    add(deadline, fire) {
      const handle = {};
      entries.set(handle, { deadline, fire });
      if (timer === undefined) {
        timer = setInterval(tick, tickMs);
        timer.unref();
      }
      return handle;
    },
    remove(handle) {
      entries.delete(handle);
    },
    close() {
      entries.clear();
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
    },
  };
}
