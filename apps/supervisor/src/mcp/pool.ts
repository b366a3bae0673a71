import { canonicalJson, sha256Hex } from '@keel/kit/core';
import type { ServerConfig } from '../config/schema.js';
import {
  connectLaunch,
  connectServers,
  serverLaunch,
  type ConnectedServer,
  type ServerOptions,
} from './servers.js';

/** Where a task gets its server connections, and where they go when it ends. */
export interface ServerSource {
  acquire(
    configs: Record<string, ServerConfig>,
    options: ServerOptions & { only?: ReadonlySet<string> },
  ): Promise<Map<string, ConnectedServer>>;
  /**
   * Takes a task's servers back. `reusable` is false when the task was killed, cancelled mid-call or
   * ended in error: its servers are closed, never handed to another task.
   */
  release(servers: Map<string, ConnectedServer>, reusable: boolean): Promise<void>;
}

const closeAll = async (servers: Iterable<ConnectedServer>) => {
  await Promise.all([...servers].map((server) => server.close().catch(() => undefined)));
};

/** A process per server per task, closed when the task ends: what `keel run` does. */
export const freshServers: ServerSource = {
  acquire: connectServers,
  release: (servers) => closeAll(servers.values()),
};

export interface ServerPool extends ServerSource {
  /** How many idle servers it holds. */
  idle(): number;
  /** Closes the idle servers; servers released afterwards are closed too. */
  close(): Promise<void>;
}

/**
 * Warm servers for the tasks of one worker. A task leases each of its servers whole — two tasks
 * never share a process at once, so killing one task reaps only its own servers and their tool
 * processes — and hands them back when it ends cleanly. The next task whose launch is identical
 * (server name, command, args, env, working directory: so the same roots) takes one instead of
 * starting a process; a different launch never does. At most `maxIdle` idle servers are kept per
 * launch, and one whose process has exited is dropped.
 */
export function createServerPool(options: { maxIdle: number }): ServerPool {
  const idle = new Map<string, ConnectedServer[]>();
  const launchOf = new WeakMap<ConnectedServer, string>();
  let closed = false;

  const take = (key: string): ConnectedServer | undefined => {
    const list = idle.get(key) ?? [];
    for (let server = list.pop(); server !== undefined; server = list.pop()) {
      if (server.isOpen()) return server;
      void server.close().catch(() => undefined);
    }
    return undefined;
  };

  return {
    async acquire(configs, acquireOptions) {
      const wanted = Object.entries(configs).filter(
        ([name]) => acquireOptions.only === undefined || acquireOptions.only.has(name),
      );
      // Warm ones are taken, the others started at once: a task waits for its slowest server.
      const settled = await Promise.allSettled(
        wanted.map(async ([name, config]) => {
          const launch = serverLaunch(name, config, acquireOptions);
          const key = sha256Hex(canonicalJson({ name, launch }));
          const server = take(key) ?? (await connectLaunch(name, launch, acquireOptions.signal));
          launchOf.set(server, key);
          return [name, server] as const;
        }),
      );
      const leased = new Map(settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : [])));
      const failed = settled.find((s) => s.status === 'rejected');
      if (failed !== undefined) {
        await closeAll(leased.values());
        throw failed.reason;
      }
      return leased;
    },
    async release(servers, reusable) {
      const closing: ConnectedServer[] = [];
      for (const server of servers.values()) {
        const key = launchOf.get(server);
        const list = key === undefined ? [] : (idle.get(key) ?? []);
        if (reusable && !closed && key !== undefined && server.isOpen() && list.length < options.maxIdle)
          idle.set(key, [...list, server]);
        else closing.push(server);
      }
      await closeAll(closing);
    },
    idle: () => [...idle.values()].reduce((sum, list) => sum + list.length, 0),
    async close() {
      closed = true;
      const all = [...idle.values()].flat();
      idle.clear();
      await closeAll(all);
    },
  };
}
