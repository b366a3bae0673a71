import type { ToolContext } from '@keel/kit';
import * as z from 'zod';
import type { HealthConfig } from '../config/config.js';

export const healthResultSchema = z.object({
  kind: z.enum(['http', 'command']),
  ok: z.boolean(),
  detail: z.string().describe('What was checked and what came back.'),
  httpStatus: z.number().optional(),
  exitCode: z.number().nullable().optional(),
});

export type HealthResult = z.output<typeof healthResultSchema>;

const detailBytes = 400;

/** A one-line description of a health check, for plans and listings. */
export function describeHealth(health: HealthConfig): string {
  return health.http !== undefined
    ? `GET ${health.http} expects ${health.expectStatus} within ${health.timeoutMs} ms`
    : `run ${JSON.stringify(health.command)} expects exit 0 within ${health.timeoutMs} ms`;
}

/**
 * Runs a health check once: an HTTP GET that must answer the expected status before the deadline
 * (redirects are not followed), or a program (argument array, no shell) that must exit 0 in time.
 */
export async function runHealthCheck(
  health: HealthConfig,
  options: { ctx: ToolContext; cwd: string },
): Promise<HealthResult> {
  if (health.http !== undefined)
    return await httpCheck(health.http, health.expectStatus, health.timeoutMs, options.ctx.signal);
  const [command, ...args] = health.command!;
  const result = await options.ctx.run({
    command: command!,
    args,
    cwd: options.cwd,
    timeoutMs: health.timeoutMs,
    // A health command that hangs is a failed check, not a failed call.
    onTimeout: 'result',
    maxOutputBytes: 4096,
  });
  const output = `${result.stderr.text}${result.stdout.text}`.trim();
  const tail = output.length > detailBytes ? `…${output.slice(-detailBytes)}` : output;
  const ok = result.exitCode === 0 && !result.timedOut;
  const what = result.timedOut
    ? `did not finish within ${health.timeoutMs} ms`
    : result.exitCode === null
      ? `was killed by ${result.signal ?? 'a signal'}`
      : `exited ${result.exitCode}`;
  return {
    kind: 'command',
    ok,
    detail: `${command} ${what}${tail === '' ? '' : `: ${tail}`}`,
    exitCode: result.exitCode,
  };
}

async function httpCheck(
  url: string,
  expectStatus: number,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<HealthResult> {
  const deadline = AbortSignal.timeout(timeoutMs);
  try {
    const response = await fetch(url, { redirect: 'manual', signal: AbortSignal.any([signal, deadline]) });
    await response.body?.cancel();
    const ok = response.status === expectStatus;
    return {
      kind: 'http',
      ok,
      detail: `GET ${url} answered ${response.status}${ok ? '' : `, expected ${expectStatus}`}`,
      httpStatus: response.status,
    };
  } catch (error) {
    signal.throwIfAborted();
    const reason = deadline.aborted
      ? `no answer within ${timeoutMs} ms`
      : `failed: ${(error as Error & { cause?: Error }).cause?.message ?? (error as Error).message}`;
    return { kind: 'http', ok: false, detail: `GET ${url} ${reason}` };
  }
}
