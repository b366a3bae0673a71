// Processes as /proc shows them (Linux only): read apart from the code under test.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** Every live (non-zombie) process whose working directory is inside `dir`. */
export function processesIn(dir) {
  const out = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const cwd = readlinkSync(`/proc/${name}/cwd`);
      if (cwd !== dir && !cwd.startsWith(`${dir}/`)) continue;
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
      if (state === 'Z') continue;
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      out.push({ pid: Number(name), state, cmdline });
    } catch {
      // Gone while read, or not ours to read.
    }
  }
  return out;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether `pid` still exists (a zombie counts as gone). */
export function alive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Waits up to `ms` for every process in `dir` but those in `keep` to end; returns what is left (an
 * orphan: a process the death left behind that did not end by itself).
 */
export async function leftoverIn(dir, keep = [], ms = 20_000) {
  const until = Date.now() + ms;
  for (let delay = 5; ; delay = Math.min(delay * 2, 200)) {
    const left = processesIn(dir).filter((p) => !keep.includes(p.pid));
    if (left.length === 0 || Date.now() >= until) return left;
    await sleep(delay);
  }
}

/** SIGKILLs what a round left behind (after reporting it), so the next round starts clean. */
export function killAll(procs) {
  for (const p of procs)
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
}
