import { KeelError } from './errors.js';
import type { Logger } from './logger.js';

/**
 * The kit's named crash points: places in every server's call pipeline where a chaos run can have
 * the server SIGKILL itself (the bin reads the name from KEEL_CRASH_AT), to land a crash in a window
 * too narrow to hit with a kill from outside. Each names what is durable when it fires. Names of
 * other components (`deploy.…`, `supervisor.…`) are theirs and ignored here.
 */
export const kitCrashPoints = [
  /** The idempotency key is claimed for this process; the handler has not started. */
  'kit.after-claim',
  /** The handler settled (its effect, if any, is done); the key's completion is not recorded. */
  'kit.after-effect',
] as const;

export type KitCrashPointName = (typeof kitCrashPoints)[number];

/**
 * Kills this process at `name` when it is the armed point (and, when the point was armed for one
 * idempotency key, `key` is that key); does nothing otherwise.
 */
export type KitCrashPoint = (name: KitCrashPointName, key?: string) => void;

export const noKitCrashPoint: KitCrashPoint = () => undefined;

/**
 * A KEEL_CRASH_AT value apart: `name`, or `name@key` — the point armed only in the call keyed `key`
 * (so a chaos run can arm a server for its next call while it still answers others).
 */
export function parseCrashAt(at: string): { name: string; key: string | undefined } {
  const sep = at.indexOf('@');
  return sep < 0 ? { name: at, key: undefined } : { name: at.slice(0, sep), key: at.slice(sep + 1) };
}

/**
 * The crash point KEEL_CRASH_AT arms (`at`), if it names one of the kit's (`kit.…`); unset or
 * another component's name: a no-op, so an ordinary run pays one function call per keyed call.
 * An unknown `kit.` name is refused, so a typo in a chaos run cannot quietly never crash.
 */
export function kitCrashPointFrom(at: string | undefined, logger: Logger): KitCrashPoint {
  if (at === undefined || !at.startsWith('kit.')) return noKitCrashPoint;
  const armed = parseCrashAt(at);
  if (!(kitCrashPoints as readonly string[]).includes(armed.name))
    throw new KeelError('INVALID_ARGUMENT', `KEEL_CRASH_AT='${at}' is not a crash point of the kit`, {
      hint: `Crash points: ${kitCrashPoints.join(', ')}.`,
    });
  logger.warn('a crash point is armed: this server SIGKILLs itself there (KEEL_CRASH_AT)', { crashAt: at });
  return (name, key) => {
    if (name !== armed.name || (armed.key !== undefined && key !== armed.key)) return;
    // Written before the kill (stderr to a pipe or file is synchronous), so a run can tell where it died.
    logger.warn('crash point reached: SIGKILL (KEEL_CRASH_AT)', { crashPoint: name });
    process.kill(process.pid, 'SIGKILL');
  };
}
