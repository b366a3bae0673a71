import { existsSync, readdirSync, readFileSync } from 'node:fs';

/**
 * Whether this system has /proc (Linux): keel reads process start times, parents and groups there.
 * Without it, a process's liveness cannot be checked and its tree cannot be found.
 */
export const hasProcfs = (root = '/proc') => existsSync(`${root}/self/stat`);

export interface ProcStat {
  pid: number;
  ppid: number;
  pgid: number;
  startTime: string;
}

/** /proc/<pid>/stat, parsed past the command name (which may hold spaces and parentheses). */
function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // After the name: state(0) ppid(1) pgrp(2) ... starttime(19).
  return { pid, ppid: Number(fields[1]), pgid: Number(fields[2]), startTime: fields[19] ?? '' };
}

/** The start time of a process (clock ticks since boot), so a recycled pid is never mistaken for it. */
export function processStartTime(pid: number): string | undefined {
  return readStat(pid)?.startTime;
}

/** Whether `pid` is still the process that started at `startTime`. */
export function isSameProcess(pid: number, startTime: string): boolean {
  return processStartTime(pid) === startTime;
}

let snapshot: { at: number; list: ProcStat[] } | undefined;

/**
 * Every process, read from /proc at most every 50 ms: `keel kill --all` walks the tree of twenty
 * owners at once, and twenty full reads of /proc on a loaded machine cost more than the kill.
 */
function allProcesses(): ProcStat[] {
  const now = performance.now();
  if (snapshot !== undefined && now - snapshot.at < 50) return snapshot.list;
  snapshot = { at: now, list: readAllProcesses() };
  return snapshot.list;
}

function readAllProcesses(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readStat(Number(name));
    if (stat !== undefined) out.push(stat);
  }
  return out;
}

/**
 * Every process below `root` (children, grandchildren, …), including those in process groups of
 * their own — which is how tool children run, so killing a server's group alone would miss them.
 */
export function descendants(root: number): ProcStat[] {
  const all = allProcesses();
  const children = new Map<number, ProcStat[]>();
  for (const p of all) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const out: ProcStat[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    for (const child of children.get(pid) ?? []) {
      out.push(child);
      queue.push(child.pid);
    }
  }
  return out;
}

/**
 * `roots` that are alive and everything below them, as they stand now. Read before the roots exit:
 * what they leave behind is re-parented then, and can no longer be found below them.
 */
export function treeOf(roots: readonly number[]): ProcStat[] {
  return roots.flatMap((pid) => {
    const root = readStat(pid);
    return root === undefined ? [] : [root, ...descendants(pid)];
  });
}

/** Which of `procs` still run: the same pid with the same start time, so a recycled pid never counts. */
export const stillRunning = (procs: readonly ProcStat[]) =>
  procs.filter((p) => isSameProcess(p.pid, p.startTime));

/**
 * SIGKILLs `root` and everything below it. The tree is read first: once the root dies its children
 * are re-parented and could no longer be found. A process that leads its own group is killed with
 * its group (a tool's grandchildren); others by pid, so a shell's group is never touched.
 */
export function killTree(root: number): number[] {
  const tree = descendants(root);
  const killed: number[] = [];
  const kill = (target: number) => {
    try {
      process.kill(target, 'SIGKILL');
      killed.push(Math.abs(target));
    } catch {
      // Already gone.
    }
  };
  kill(root);
  for (const p of tree) kill(p.pgid === p.pid ? -p.pid : p.pid);
  return killed;
}
