import { ownerEnvName } from './idempotency/owner.js';
import { spawn } from 'node:child_process';
import { createHeadTailBuffer, type CappedText } from './bounds.js';
import { KeelError } from './errors.js';
import type { PathJail } from './jail.js';
import { kitDefaults } from './defaults.js';
import type { ProcessGroups } from './processGroups.js';

/** Environment variables a child sees unless a caller names more. Nothing secret-shaped by default. */
export const defaultEnvAllowlist = [
  'PATH',
  'HOME',
  'LANG',
  'LANGUAGE',
  'LC_ALL',
  'LC_CTYPE',
  'TZ',
  'TMPDIR',
  'USER',
  'LOGNAME',
  'TERM',
] as const;

export interface RunProcessOptions {
  command: string;
  /** Passed as-is to the program: never through a shell, never split. */
  args: readonly string[];
  cwd: string;
  /** When given, `cwd` must resolve inside it. */
  jail?: PathJail;
  /** Parent environment to draw allowed variables from (default: process.env). */
  baseEnv?: NodeJS.ProcessEnv;
  envAllowlist?: readonly string[];
  /** Set on top of the allowed variables. */
  env?: Record<string, string>;
  timeoutMs: number;
  /** Per stream; the head and tail are kept and the middle counted. */
  maxOutputBytes: number;
  signal?: AbortSignal;
  stdin?: string | Buffer;
  /** Grace between SIGTERM and SIGKILL to the process group. */
  killGraceMs?: number;
  onStdout?: (chunk: Buffer) => void;
  onStderr?: (chunk: Buffer) => void;
  /** Where the child's process group is registered while it runs, so its owner can kill it on shutdown. */
  groups?: ProcessGroups;
  /** The claim owner running it: the child and what it starts carry it, so a crash's leftovers can be found. */
  owner?: string;
}

/** What a handler passes to `ctx.run`: the call supplies the signal, the jail and the process registry. */
export type CallRunOptions = Omit<RunProcessOptions, 'signal' | 'jail' | 'groups'> & {
  /**
   * What a run that hits its own `timeoutMs` does: `fail` (default) throws a TIMEOUT error with a
   * hint; `result` returns it with `timedOut: true`, for a tool that reports partial output.
   */
  onTimeout?: 'fail' | 'result';
  /** The TIMEOUT error's hint. */
  timeoutHint?: string;
};

export interface ProcessResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: CappedText;
  stderr: CappedText;
  durationMs: number;
  timedOut: boolean;
  cancelled: boolean;
}

/**
 * Runs a program without a shell, with an allowlisted environment, a timeout and output caps. The
 * child leads its own process group, so a timeout or cancel kills everything it started.
 */
export async function runProcess(options: RunProcessOptions): Promise<ProcessResult> {
  if (options.jail !== undefined) {
    const cwd = await options.jail.resolve(options.cwd);
    if (!cwd.ok)
      throw new KeelError(cwd.error.code, `working directory: ${cwd.error.message}`, {
        hint: cwd.error.hint,
      });
  }
  const baseEnv = options.baseEnv ?? process.env;
  const env: Record<string, string> = {};
  for (const name of options.envAllowlist ?? defaultEnvAllowlist) {
    const value = baseEnv[name];
    if (value !== undefined) env[name] = value;
  }
  Object.assign(env, options.env);
  if (options.owner !== undefined) env[ownerEnvName] = options.owner;

  const started = performance.now();
  const stdout = createHeadTailBuffer(options.maxOutputBytes);
  const stderr = createHeadTailBuffer(options.maxOutputBytes);

  return await new Promise<ProcessResult>((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(new KeelError('CANCELLED', `${options.command} was cancelled before it started`));
      return;
    }
    const child = spawn(options.command, [...options.args], {
      cwd: options.cwd,
      env,
      shell: false,
      detached: true,
      // No stdin pipe unless there is input: one less descriptor pair per child.
      stdio: [options.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      windowsHide: true,
    });
    const pid = child.pid;
    if (pid !== undefined) options.groups?.add(pid);
    let timedOut = false;
    let cancelled = false;
    let killTimer: NodeJS.Timeout | undefined;

    const killGroup = (signal: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        // The group is already gone.
      }
    };
    const stop = () => {
      killGroup('SIGTERM');
      killTimer ??= setTimeout(() => killGroup('SIGKILL'), options.killGraceMs ?? kitDefaults.killGraceMs);
      killTimer.unref();
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, options.timeoutMs);
    const onAbort = () => {
      cancelled = true;
      stop();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });

    // stdout and stderr are always pipes (see stdio above); only stdin may be absent.
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout.push(chunk);
      options.onStdout?.(chunk);
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr.push(chunk);
      options.onStderr?.(chunk);
    });
    if (child.stdin !== null) {
      child.stdin.on('error', () => {
        // The child may exit without reading its input; that is its business.
      });
      child.stdin.end(options.stdin);
    }

    child.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (pid !== undefined) options.groups?.delete(pid);
      options.signal?.removeEventListener('abort', onAbort);
      if (error.code === 'ENOENT') {
        reject(
          new KeelError('UNAVAILABLE', `program '${options.command}' was not found`, {
            hint: `Install ${options.command} or put it on the server's PATH.`,
            retryable: false,
            cause: error,
          }),
        );
      } else {
        reject(
          new KeelError('INTERNAL', `could not start '${options.command}': ${error.message}`, {
            cause: error,
          }),
        );
      }
    });
    child.once('close', (exitCode, signal) => {
      clearTimeout(timer);
      // The direct child is gone; make sure nothing it left in its group outlives the call.
      if (timedOut || cancelled) killGroup('SIGKILL');
      if (pid !== undefined) options.groups?.delete(pid);
      if (killTimer !== undefined) clearTimeout(killTimer);
      options.signal?.removeEventListener('abort', onAbort);
      resolve({
        exitCode,
        signal,
        stdout: stdout.result(),
        stderr: stderr.result(),
        durationMs: Math.round(performance.now() - started),
        timedOut,
        cancelled,
      });
    });
  });
}
