import { fileURLToPath } from 'node:url';
import {
  defaultEnvAllowlist,
  KeelError,
  type CallRunOptions,
  type ProcessResult,
  type Sandbox,
  type SandboxStatus,
  type ToolContext,
} from '@keel/kit';

/** Our reporter modules, which vitest and node:test load inside the run. */
export const reportersDir = fileURLToPath(new URL('../reporters/', import.meta.url));

export interface SandboxedRunOptions extends CallRunOptions {
  /** Private directories this run may write besides the roots (where report files go). */
  scratch?: readonly string[];
}

/**
 * Runs a command of this server — a test run, a listing, a version probe, the git that hashes the
 * tree — inside the sandbox: each of them executes code or config the agent may have written. The
 * call's roots and the run's scratch dirs are the only writable places. A sandbox that must be had
 * and cannot is a refusal (UNAVAILABLE), thrown as the tool's error.
 */
export async function runSandboxed(
  ctx: ToolContext,
  sandbox: Sandbox,
  options: SandboxedRunOptions,
): Promise<ProcessResult & { sandbox: SandboxStatus }> {
  const { scratch = [], onTimeout, timeoutHint, ...run } = options;
  const baseEnv = run.baseEnv ?? process.env;
  const allowlist: readonly string[] = run.envAllowlist ?? defaultEnvAllowlist;
  const pathVariable = run.env?.['PATH'] ?? (allowlist.includes('PATH') ? baseEnv['PATH'] : undefined);
  const wrapped = await sandbox.wrap({
    command: run.command,
    args: run.args,
    cwd: run.cwd,
    writable: [...ctx.jail.roots, ...scratch],
    readOnly: [reportersDir],
    ...(pathVariable === undefined ? {} : { pathVariable }),
  });
  if (!wrapped.ok) {
    const { code, message, hint, retryable } = wrapped.error;
    throw new KeelError(code, message, { hint, retryable });
  }
  const result = await ctx.run({
    ...run,
    command: wrapped.value.command,
    args: wrapped.value.args,
    env: { ...run.env, ...wrapped.value.env },
    // Named after the program that ran, not after bwrap.
    onTimeout: 'result',
  });
  if (result.timedOut && onTimeout !== 'result') {
    const program = run.command.split('/').pop() ?? run.command;
    throw new KeelError(
      'TIMEOUT',
      `${run.args[0] === undefined ? program : `${program} ${run.args[0]}`} did not finish within ${run.timeoutMs} ms`,
      { hint: timeoutHint ?? 'Narrow the request or raise the timeout.' },
    );
  }
  return { ...result, sandbox: wrapped.value.sandbox };
}

/** How a run's confinement reads in a tool's text. */
export function describeSandbox(sandbox: {
  kind: SandboxStatus['kind'];
  reason?: string | undefined;
}): string {
  return sandbox.kind === 'bwrap'
    ? 'sandbox: bwrap (network off; only the roots writable; private HOME and /tmp)'
    : `UNSANDBOXED: ${sandbox.reason ?? 'no sandbox'} — the code ran with the server's own access`;
}
