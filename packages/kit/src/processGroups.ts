/**
 * The process groups a server's calls have started and not yet reaped. A server owns one, so its
 * shutdown can kill every child it started even when a call does not settle in time: no tool
 * process outlives its server (a supervisor's kill switch relies on it).
 */
export interface ProcessGroups {
  add(pid: number): void;
  delete(pid: number): void;
  /** Signals every live group; returns how many groups were signalled. */
  killAll(signal: NodeJS.Signals): number;
  readonly size: number;
  /** Resolves when every registered group's leader has been reaped. */
  empty(): Promise<void>;
}

export function createProcessGroups(): ProcessGroups {
  const pids = new Set<number>();
  let waiting: Array<() => void> = [];
  const remove = (pid: number) => {
    pids.delete(pid);
    if (pids.size === 0 && waiting.length > 0) {
      const resolves = waiting;
      waiting = [];
      for (const resolve of resolves) resolve();
    }
  };
  return {
    add: (pid) => void pids.add(pid),
    delete: remove,
    killAll(signal) {
      let signalled = 0;
      for (const pid of pids) {
        try {
          process.kill(-pid, signal);
          signalled++;
        } catch {
          // The group is already gone.
          remove(pid);
        }
      }
      return signalled;
    },
    get size() {
      return pids.size;
    },
    empty() {
      return pids.size === 0 ? Promise.resolve() : new Promise((resolve) => waiting.push(resolve));
    },
  };
}
