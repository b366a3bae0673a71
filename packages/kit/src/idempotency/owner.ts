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
 * uncertain (another machine, another container, no /proc, a pid reused by a live process) is
 * false, and the lease decides.
 */
export function ownerIsGone(owner: string): boolean {
  const match = /^(\d+):[^@]*@(.*)\/([^/]+)$/.exec(owner);
  if (match === null) return false;
  const [, pid, host, namespace] = match;
  const here = pidNamespace();
  if (host !== hostname() || here === undefined || namespace !== here) return false;
  try {
    process.kill(Number(pid), 0);
    return false;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') return false;
  }
  return !leftoversRunning(owner);
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
