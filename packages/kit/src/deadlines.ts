/** Something to tell when its time is up. */
export interface DeadlineTarget {
  onDeadline(): void;
}

/**
 * Per-call time limits on one shared timer. A timer per call costs an allocation and a heap
 * operation on every call, most of which end in microseconds; one ticking watch costs a Set insert.
 * A limit fires at most one tick late, which is nothing next to limits measured in seconds.
 */
export interface DeadlineWatch {
  add(target: DeadlineTarget, deadline: number): void;
  remove(target: DeadlineTarget): void;
  close(): void;
}

export function createDeadlineWatch(tickMs = 25): DeadlineWatch {
  const entries = new Map<DeadlineTarget, number>();
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    const now = Date.now();
    for (const [target, deadline] of entries) {
      if (deadline <= now) {
        entries.delete(target);
        target.onDeadline();
      }
    }
    // Stop ticking when idle; the next add starts it again.
    if (entries.size === 0 && timer !== undefined) {
      clearInterval(timer);
      timer = undefined;
    }
  };
  return {
    add(target, deadline) {
      entries.set(target, deadline);
      if (timer === undefined) {
        timer = setInterval(tick, tickMs);
        timer.unref();
      }
    },
    remove(target) {
      entries.delete(target);
    },
    close() {
      entries.clear();
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
    },
  };
}
