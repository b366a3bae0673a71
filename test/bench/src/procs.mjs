// The process table as /proc shows it, for the benchmarks that watch process trees (Linux only).
import { readdirSync, readFileSync } from 'node:fs';

/** One process: pid, parent, state, start time (clock ticks since boot), CPU ticks (own + reaped children's), command line. */
function parse(pid, stat, cmdline) {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return {
    pid,
    state: fields[0],
    ppid: Number(fields[1]),
    ticks: fields.slice(11, 15).map(Number),
    startTime: fields[19],
    cmdline,
  };
}

/** Every process now. */
export function processes() {
  const out = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ');
      out.push(parse(Number(name), stat, cmdline));
    } catch {
      // Gone while read.
    }
  }
  return out;
}

/** Every process below `root` (not `root` itself), breadth first. */
export function below(root, all = processes()) {
  const out = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift();
    for (const p of all)
      if (p.ppid === pid) {
        out.push(p);
        queue.push(p.pid);
      }
  }
  return out;
}

/** `root` and every process below it. */
export function tree(root, all = processes()) {
  return [...all.filter((p) => p.pid === root), ...below(root, all)];
}

/** Still running: the same process (pid and start time) in /proc and not a zombie waiting to be reaped. */
export function running(p) {
  try {
    const fields = parse(p.pid, readFileSync(`/proc/${p.pid}/stat`, 'utf8'), '');
    return fields.startTime === p.startTime && fields.state !== 'Z';
  } catch {
    return false;
  }
}
