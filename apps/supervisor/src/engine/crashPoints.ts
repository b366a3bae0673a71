import { KeelError } from '@keel/kit/core';

/**
 * The named places where a chaos run can have the supervisor SIGKILL itself (KEEL_CRASH_AT, the
 * same variable the deploy server reads; names of other components are theirs), to land a crash in
 * a window too narrow to hit with a kill from outside. Each names what is durable when it fires;
 * the README lists them.
 */
export const supervisorCrashPoints = [
  /** The task is claimed (its owner record and epoch written); nothing of this run is recorded yet. */
  'supervisor.after-claim',
  /** A model reply is recorded; none of the tool calls it asks for has started. */
  'supervisor.after-model-recorded',
  /** A tool call's result is recorded; the model has not seen it. */
  'supervisor.after-tool-recorded',
] as const;

export type SupervisorCrashPoint = (typeof supervisorCrashPoints)[number];

/** Kills this process at `name` when it is the armed point; does nothing otherwise. */
export type CrashPoint = (name: SupervisorCrashPoint) => void;

export const noCrashPoint: CrashPoint = () => undefined;

/**
 * The crash point KEEL_CRASH_AT arms, if it names one of the supervisor's (`supervisor.…`); an
 * unknown `supervisor.` name is refused, so a typo in a chaos run cannot quietly never crash.
 */
export function crashPointFrom(env: NodeJS.ProcessEnv): CrashPoint {
  const at = env['KEEL_CRASH_AT'];
  if (at === undefined || !at.startsWith('supervisor.')) return noCrashPoint;
  if (!(supervisorCrashPoints as readonly string[]).includes(at))
    throw new KeelError('INVALID_ARGUMENT', `KEEL_CRASH_AT='${at}' is not a crash point of keel`, {
      hint: `crash points: ${supervisorCrashPoints.join(', ')}`,
    });
  return (name) => {
    if (name !== at) return;
    // Written before the kill (stderr to a pipe or file is synchronous), so a run can tell where it died.
    process.stderr.write(`keel: crash point reached: SIGKILL (KEEL_CRASH_AT=${name})\n`);
    process.kill(process.pid, 'SIGKILL');
  };
}
