import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

/**
 * This process as the owner of idempotency claims: `PID:RANDOM@HOST/PIDNS`. The pid comes first (a
 * waiting duplicate shows it; tests find the holder by it); host and pid namespace say where that
 * pid means something, so another process there can tell that the holder is gone.
 */
export function processOwner(): string {
  return `${process.pid}:${randomUUID().slice(0, 8)}@${hostname()}/${pidNamespace() ?? '-'}`;
}

/** The environment variable every tool child (and what it starts) carries: its server's owner string. */
export const ownerEnvName = 'KEEL_CLAIM_OWNER';

/**
 * True only when `owner` is a process of this host and pid namespace that no longer exists, and no
 * process it started (a git or a test run, which outlive a SIGKILLed server in their own process
 * groups) still runs: its claim can be recovered now instead of when its lease runs out. Anything
 * uncertain (another machine, another container, no /proc) is false, and the lease decides. With
 * the owner's `startTime` (its {@link processStartTime} when it wrote the claim), a live process
 * that reuses the pid but started at another time is told apart from the owner; without it, a live
 * pid counts as the owner.
 */
export function ownerIsGone(owner: string, options: { startTime?: string } = {}): boolean {
  const match = /^(\d+):[^@]*@(.*)\/([^/]+)$/.exec(owner);
  if (match === null) return false;
  const [, pid, host, namespace] = match;
  const here = pidNamespace();
  if (host !== hostname() || here === undefined || namespace !== here) return false;
  try {
    process.kill(Number(pid), 0);
    const started = options.startTime === undefined ? undefined : processStartTime(Number(pid));
    if (started === undefined || started === options.startTime) return false;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') return false;
  }
  return !leftoversRunning(owner);
}

/**
 * When a process started, as `BOOT:TICKS` (Linux: the boot id and the start time in clock ticks
 * from /proc/PID/stat), or undefined where that cannot be read (no /proc, no such process). Beside
 * a pid it names one process: a pid reused later gets another start time.
 */
export function processStartTime(pid: number = process.pid): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces and parentheses); starttime is field 22.
    const ticks = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    return ticks === undefined ? undefined : `${boot}:${ticks}`;
  } catch {
    return undefined;
  }
}

/** Whether any process still carries `owner` in its environment (unreadable ones count as not). */
function leftoversRunning(owner: string): boolean {
  const mark = Buffer.from(`${ownerEnvName}=${owner}\0`);
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let environ: Buffer;
    try {
      environ = readFileSync(`/proc/${name}/environ`);
    } catch {
      continue;
    }
    const at = environ.indexOf(mark);
    if (at === 0 || (at > 0 && environ[at - 1] === 0)) return true;
  }
  return false;
}

let cachedNamespace: string | null | undefined;
/** The pid namespace's inode (Linux), or undefined where there is no such thing to compare. */
function pidNamespace(): string | undefined {
  if (cachedNamespace === undefined) {
    try {
      cachedNamespace = /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/pid'))?.[1] ?? null;
    } catch {
      cachedNamespace = null;
    }
  }
  return cachedNamespace ?? undefined;
}
