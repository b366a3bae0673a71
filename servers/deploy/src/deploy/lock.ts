import { ownerIsGone, type StateStore } from '@keel/kit';

/** Who holds an environment's lock and what they are doing; kept in the state store under `lock/<env>`. */
export interface LockHolder {
  /** The holding server as the kit names its owners (`PID:RANDOM@HOST/PIDNS`). */
  owner: string;
  /** The holder's process start time, which tells it from a later process that got its pid. */
  startTime?: string;
  operation: 'apply' | 'rollback';
  planId: string | null;
  acquiredAt: number;
  phase: string;
  progress?: { done: number; total: number };
}

export type Acquired = { ok: true; lock: EnvironmentLock } | { ok: false; holder: LockHolder };

/**
 * Whether a holder is certainly gone: a process of this host and pid namespace that no longer runs
 * (or whose pid another process now has), with nothing it started still running. Anything the
 * check cannot be sure of (another machine or container, an older holder record) waits for the lease.
 */
export function holderIsGone(holder: LockHolder): boolean {
  return ownerIsGone(holder.owner, holder.startTime === undefined ? {} : { startTime: holder.startTime });
}

/**
 * An environment's deploy lock: a state entry with a lease, renewed while held. A holder that is
 * certainly gone ({@link holderIsGone}) is taken over at once; any other only when its lease runs out.
 */
export class EnvironmentLock {
  readonly #store: StateStore;
  readonly #key: string;
  readonly #leaseMs: number;
  #holder: LockHolder;
  #version: number;
  #chain: Promise<unknown> = Promise.resolve();
  #lost = false;
  readonly #heartbeat: NodeJS.Timeout;

  private constructor(store: StateStore, key: string, leaseMs: number, holder: LockHolder, version: number) {
    this.#store = store;
    this.#key = key;
    this.#leaseMs = leaseMs;
    this.#holder = holder;
    this.#version = version;
    this.#heartbeat = setInterval(
      () => void this.#write({}).catch(() => undefined),
      Math.max(50, Math.floor(leaseMs / 3)),
    );
    this.#heartbeat.unref();
  }

  static async acquire(
    store: StateStore,
    environment: string,
    request: {
      owner: string;
      startTime: string | undefined;
      operation: LockHolder['operation'];
      planId: string | null;
      leaseMs: number;
      now: number;
    },
  ): Promise<Acquired> {
    const key = `lock/${environment}`;
    const holder: LockHolder = {
      owner: request.owner,
      ...(request.startTime === undefined ? {} : { startTime: request.startTime }),
      operation: request.operation,
      planId: request.planId,
      acquiredAt: request.now,
      phase: 'starting',
    };
    let expected = 0;
    for (let attempt = 0; attempt < 3; attempt++) {
      const taken = await store.put(key, holder, { ifVersion: expected, ttlMs: request.leaseMs });
      if (taken.ok)
        return {
          ok: true,
          lock: new EnvironmentLock(store, key, request.leaseMs, holder, taken.entry.version),
        };
      const current = taken.current as { value: LockHolder; version: number } | undefined;
      if (current === undefined) {
        expected = 0;
        continue;
      }
      if (!holderIsGone(current.value)) return { ok: false, holder: current.value };
      expected = current.version;
    }
    throw new Error(`the lock '${key}' kept changing hands while being acquired`);
  }

  /** Whether the lease was lost (another process took it after it ran out); the holder must stop before its next step. */
  get lost(): boolean {
    return this.#lost;
  }

  /** Records the phase (and progress) the holder is in; throws if the lock was lost. */
  async phase(phase: string, progress?: { done: number; total: number }): Promise<void> {
    await this.#write({ phase, ...(progress === undefined ? {} : { progress }) });
  }

  /** Notes progress without waiting; a failure shows at the next `phase`. */
  progress(done: number, total: number): void {
    void this.#write({ progress: { done, total } }).catch(() => undefined);
  }

  async release(): Promise<void> {
    clearInterval(this.#heartbeat);
    await this.#chain.catch(() => undefined);
    if (!this.#lost) await this.#store.delete(this.#key, { ifVersion: this.#version });
  }

  #write(patch: Partial<LockHolder>): Promise<void> {
    const next = this.#chain.then(async () => {
      if (this.#lost) throw new Error(`the deploy lock '${this.#key}' was lost`);
      const holder = { ...this.#holder, ...patch };
      const written = await this.#store.put(this.#key, holder, {
        ifVersion: this.#version,
        ttlMs: this.#leaseMs,
      });
      if (!written.ok) {
        this.#lost = true;
        throw new Error(`the deploy lock '${this.#key}' was lost`);
      }
      this.#holder = holder;
      this.#version = written.entry.version;
    });
    this.#chain = next.catch(() => undefined);
    return next;
  }
}
