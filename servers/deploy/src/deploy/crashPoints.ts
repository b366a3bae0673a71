import { KeelError, parseCrashAt, type ToolContext } from '@keel/kit';

/**
 * The named places where a chaos run can have the server SIGKILL itself (the bin reads the name from
 * KEEL_CRASH_AT), to land a crash in a window too narrow to hit with a kill from outside. Each names
 * what is durable when it fires; the README lists them.
 */
export const crashPointNames = [
  /** The attempt and the approval it spends are committed; nothing is copied yet. */
  'deploy.after-token-spent',
  /** The release is prepared on the target; the attempt still says copying. */
  'deploy.after-copy',
  /** The target switched to the new release; the attempt still says switching. */
  'deploy.after-switch',
  /** The switch back after a failed health check happened; the attempt still says rolling_back. */
  'deploy.after-switch-back',
  /** The release and the environment's new generation are recorded; older releases are not pruned yet. */
  'deploy.between-release-and-prune',
  /** A rollback switched the target; the attempt still says switching. */
  'rollback.after-switch',
] as const;

export type CrashPointName = (typeof crashPointNames)[number];

/** Kills this process at `name` when it is the configured point; does nothing otherwise. */
export type CrashPoint = (name: CrashPointName, ctx: ToolContext) => void;

/**
 * The crash point for `at` (undefined: none, the normal case); `name@key` arms it only in the call
 * of that idempotency key. An unknown name is refused, so a typo in a chaos run cannot quietly never
 * crash.
 */
export function createCrashPoint(at: string | undefined): CrashPoint {
  // The kit's and the supervisor's points are theirs (the kit checks its own).
  if (at === undefined || at === '' || at.startsWith('kit.') || at.startsWith('supervisor.'))
    return () => undefined;
  const armed = parseCrashAt(at);
  if (!(crashPointNames as readonly string[]).includes(armed.name)) {
    throw new KeelError('INVALID_ARGUMENT', `KEEL_CRASH_AT='${at}' is not a crash point of keel-deploy`, {
      hint: `Crash points: ${crashPointNames.join(', ')}.`,
    });
  }
  return (name, ctx) => {
    if (name !== armed.name || (armed.key !== undefined && ctx.idempotencyKey !== armed.key)) return;
    // Written before the kill (stderr to a pipe or file is synchronous), so a run can tell where it died.
    ctx.logger.warn('crash point reached: SIGKILL (KEEL_CRASH_AT)', { crashPoint: name });
    process.kill(process.pid, 'SIGKILL');
  };
}
