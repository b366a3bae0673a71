import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { onTestFinished } from 'vitest';

/** The built bin, run as a real process: `pnpm build` first. */
export const keelBin = new URL('../dist/bin.js', import.meta.url).pathname;

/** One process as /proc shows it; read here, apart from the code under test. */
export interface Proc {
  pid: number;
  ppid: number;
  pgid: number;
  state: string;
  startTime: string;
  cmdline: string;
}

export function readProc(pid: number): Proc | undefined {
  let stat: string;
  let cmdline = '';
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
  } catch {
    return undefined;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return {
    pid,
    state: fields[0]!,
    ppid: Number(fields[1]),
    pgid: Number(fields[2]),
    startTime: fields[19]!,
    cmdline,
  };
}

export function allProcs(): Proc[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .flatMap((name) => readProc(Number(name)) ?? []);
}

/** Every process below `root`, by parent links. */
export function below(root: number): Proc[] {
  const procs = allProcs();
  const out: Proc[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    for (const p of procs)
      if (p.ppid === pid) {
        out.push(p);
        queue.push(p.pid);
      }
  }
  return out;
}

/** Whether this very process (same pid and start time) still has an entry in /proc, a zombie included. */
export const present = (p: Pick<Proc, 'pid' | 'startTime'>) => readProc(p.pid)?.startTime === p.startTime;
/** Still running: present and not a zombie (a killed process whose exit status nobody has collected yet). */
export const running = (p: Pick<Proc, 'pid' | 'startTime'>) => {
  const now = readProc(p.pid);
  return now?.startTime === p.startTime && now.state !== 'Z';
};

/** Processes whose working directory lies inside `dir`: a test's servers and tool runs, wherever they were re-parented. */
export function processesIn(dir: string): Proc[] {
  return allProcs().filter((p) => {
    if (p.pid === process.pid) return false;
    try {
      const cwd = readlinkSync(`/proc/${p.pid}/cwd`).replace(/ \(deleted\)$/, '');
      return cwd === dir || cwd.startsWith(dir + path.sep);
    } catch {
      return false;
    }
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `check` returns a value other than undefined; fails naming `what` after `timeoutMs`. */
export async function until<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 120_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await sleep(25);
  }
}

/** A `keel` process started from the built bin, with its output collected as it comes. */
export interface KeelProcess {
  child: ChildProcess;
  pid: number;
  stdout(): string;
  stderr(): string;
  /** Complete lines written to stderr so far (progress lines, unless --quiet). */
  stderrLines(): string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * The PATH the tests run keel with: this machine's, less any directory with a `keel` in it (a
 * developer's `pnpm keel:link`), so what keel prints does not depend on who runs the tests.
 */
export const pathWithoutKeel = (process.env['PATH'] ?? '')
  .split(path.delimiter)
  .filter((dir) => dir !== '' && !existsSync(path.join(dir, 'keel')))
  .join(path.delimiter);

/** How keel prints its own commands when run so: no `keel` on the PATH is this one. */
export const printedKeel = `node ${keelBin}`;

export function startKeel(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): KeelProcess {
  const child = spawn(process.execPath, [keelBin, ...args], {
    cwd,
    env: { ...process.env, KEEL_CONFIG: '', PATH: pathWithoutKeel, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return {
    child,
    pid: child.pid!,
    stdout: () => out,
    stderr: () => err,
    stderrLines: () => err.split('\n').slice(0, -1),
    exited,
  };
}

/** Runs `keel ARGS` to its end. */
export async function keel(
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = startKeel(args, cwd, env);
  const { code } = await p.exited;
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

/** SIGKILLs every process still working inside `dir` (what a crashed machine would lose), and waits until they are gone. */
export async function killEverythingIn(dir: string): Promise<number> {
  let killed = 0;
  for (const p of processesIn(dir)) {
    try {
      process.kill(p.pid, 'SIGKILL');
      killed++;
    } catch {
      // Gone already.
    }
  }
  await until(`every process in ${dir} to go`, () =>
    processesIn(dir).filter((p) => p.state !== 'Z').length === 0 ? true : undefined,
  );
  return killed;
}

/**
 * A crash of the supervisor: SIGKILL of the keel process and of the servers it started (their
 * parent is gone, so nothing would stop them cleanly either). The tool processes those servers
 * started run in process groups of their own and are left to end by themselves, as they would:
 * a git child killed half-way would leave a stale `.git/index.lock` behind, which is not what this
 * crash is about. Waits until nothing runs in `dir` any more.
 */
export async function crash(keel: KeelProcess, dir: string): Promise<void> {
  const servers = below(keel.pid).filter((p) => p.ppid === keel.pid);
  process.kill(keel.pid, 'SIGKILL');
  for (const server of servers)
    try {
      process.kill(server.pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  await until(`everything in ${dir} to end after the crash`, () =>
    processesIn(dir).filter((p) => p.state !== 'Z').length === 0 ? true : undefined,
  );
}

/** Makes sure a test leaves nothing running inside `dir`, whatever happened to it. */
export function reapAfter(dir: string): void {
  onTestFinished(async () => {
    await killEverythingIn(dir);
  });
}
