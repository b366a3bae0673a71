import { getEventListeners } from 'node:events';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { fixtureBin, tempDir } from '@keel/testing';
import type { ServerConfig } from '../src/config/schema.js';
import { newTaskId, runTask } from '../src/engine/runTask.js';
import { createServerPool, type ServerPool } from '../src/mcp/pool.js';
import type { ConnectedServer } from '../src/mcp/servers.js';
import { createHarness, task } from './helpers.js';
import { below, present, readProc, until, type Proc } from './processes.js';

const fixtureServer = (logLevel: string): ServerConfig => {
  const bin = fixtureBin(['--root', '.', '--log-level', logLevel]);
  return { command: bin.command, args: [...bin.args], env: {} };
};
const fixture = { fixture: fixtureServer('error') };

function pool(maxIdle: number): ServerPool {
  const p = createServerPool({ maxIdle });
  onTestFinished(() => p.close());
  return p;
}

async function workspace(): Promise<{ workspace: string; stateDir: string; env: NodeJS.ProcessEnv }> {
  const dir = await tempDir('keel-pool-');
  await mkdir(path.join(dir, 'ws'));
  return { workspace: path.join(dir, 'ws'), stateDir: path.join(dir, 'state'), env: process.env };
}

const processOf = (servers: Map<string, ConnectedServer>): Proc => readProc(servers.get('fixture')!.pid!)!;

const gone = (p: Proc, what: string) => until(what, () => (present(p) ? undefined : true), 30_000);

describe('the server pool of a worker', () => {
  it('hands a released server to the next task with the same launch; a second lease or another root starts its own', async () => {
    const servers = pool(1);
    const ws = await workspace();
    const first = await servers.acquire(fixture, ws);
    const server = processOf(first);
    await servers.release(first, true);
    expect(servers.idle()).toBe(1);

    const again = await servers.acquire(fixture, ws);
    // The same process: same pid and start time (its run state, R or S, is whatever it is doing now).
    const same = (p: Proc) => ({ pid: p.pid, startTime: p.startTime, cmdline: p.cmdline });
    expect(same(processOf(again))).toEqual(same(server));
    expect(servers.idle()).toBe(0);
    // Leased whole: while one task holds it, another task gets a process of its own.
    const concurrent = await servers.acquire(fixture, ws);
    expect(processOf(concurrent).pid).not.toBe(server.pid);
    const otherRoot = await servers.acquire(fixture, await workspace());
    expect([server.pid, processOf(concurrent).pid]).not.toContain(processOf(otherRoot).pid);
    const otherArgs = await servers.acquire({ fixture: fixtureServer('warn') }, ws);
    expect([server.pid, processOf(concurrent).pid]).not.toContain(processOf(otherArgs).pid);

    // One idle server per launch is kept (maxIdle 1): the second one released is closed.
    const second = processOf(concurrent);
    await servers.release(again, true);
    await servers.release(concurrent, true);
    expect(servers.idle()).toBe(1);
    await gone(second, 'the server beyond maxIdle to exit');
    expect(present(server)).toBe(true);
    await servers.release(otherRoot, false);
    await servers.release(otherArgs, false);
  });

  it('closes the servers of a task that is not reusable, and drops one whose process died while idle', async () => {
    const servers = pool(2);
    const ws = await workspace();
    const killedTask = await servers.acquire(fixture, ws);
    const closed = processOf(killedTask);
    await servers.release(killedTask, false);
    expect(servers.idle()).toBe(0);
    await gone(closed, 'the unreusable server to exit');

    const leased = await servers.acquire(fixture, ws);
    const crashed = processOf(leased);
    await servers.release(leased, true);
    process.kill(crashed.pid, 'SIGKILL');
    await until('the pool to see the process end', () =>
      leased.get('fixture')!.isOpen() ? undefined : true,
    );
    const next = await servers.acquire(fixture, ws);
    expect(processOf(next).pid).not.toBe(crashed.pid);
    expect(servers.idle()).toBe(0);

    await servers.release(next, true);
    const idle = processOf(next);
    await servers.close();
    expect(servers.idle()).toBe(0);
    await gone(idle, 'an idle server to exit when the pool closes');
    // Released after the pool closed: closed, not kept.
    const late = await servers.acquire(fixture, ws);
    await servers.release(late, true);
    expect(servers.idle()).toBe(0);
  });
});

describe('tasks on a worker pool', () => {
  const serverPid = 'console.log(process.ppid)';
  const reportsPid = task({
    mode: 'single',
    tests: null,
    deploy: null,
    playbook: {
      coding: [
        [
          { call: 'run_node', args: { script: serverPid } },
          { submit: { version: 'change.v1', summary: 'pid', files: [], commit: null } },
        ],
      ],
    },
  });
  const sleeps = task({
    mode: 'single',
    tests: null,
    deploy: null,
    playbook: {
      coding: [
        [
          { call: 'run_node', args: { script: 'setTimeout(() => {}, 600_000) // sleeper' } },
          { submit: { version: 'change.v1', summary: 'slept', files: [], commit: null } },
        ],
      ],
    },
  });

  it('reuse the server of a clean task; a killed task closes its server and only its tool process dies with it', async () => {
    const h = await createHarness({
      config: {
        servers: fixture,
        agents: Object.fromEntries(
          ['planning', 'coding', 'review'].map((role) => [
            role,
            { model: 'playbook', tools: { fixture: ['run_node'] } },
          ]),
        ),
      },
    });
    const servers = pool(1);
    const stop = new AbortController();
    const rings = new Set<() => void>();
    const common = {
      loaded: h.loaded,
      store: h.store,
      env: process.env,
      kill: stop.signal,
      killSignals: {
        subscribe: (ring: () => void) => {
          rings.add(ring);
          return () => rings.delete(ring);
        },
      },
      servers,
    };
    const pidOf = async (taskId: string) => {
      const calls = await h.store.listToolCalls(taskId);
      expect(calls.map((c) => [c.tool, c.outcome])).toEqual([['run_node', 'ok']]);
      return Number((calls[0]!.result as { structured: { stdout: string } }).structured.stdout.trim());
    };

    const one = await runTask({ ...common, task: reportsPid });
    const two = await runTask({ ...common, task: reportsPid });
    expect([one.run.status, two.run.status]).toEqual(['succeeded', 'succeeded']);
    const warm = await pidOf(one.run.id);
    expect(await pidOf(two.run.id)).toBe(warm);
    const server = readProc(warm)!;

    const killedId = newTaskId(new Date());
    const killed = runTask({ ...common, task: sleeps, taskId: killedId });
    const sleeper = await until('the sleeping tool process below the warm server', () =>
      below(warm).find((p) => p.cmdline.includes('sleeper')),
    );
    await h.store.requestKill(killedId, new Date());
    for (const ring of rings) ring();
    expect((await killed).run.status).toBe('killed');
    await gone(sleeper, "the killed task's tool process to go");
    await gone(server, "the killed task's server to be closed, not handed on");
    expect(servers.idle()).toBe(0);

    const three = await runTask({ ...common, task: reportsPid });
    expect(three.run.status).toBe('succeeded');
    expect(await pidOf(three.run.id)).not.toBe(warm);
    // Every task took its kill listener off the worker's stop signal when it ended.
    expect(getEventListeners(stop.signal, 'abort')).toEqual([]);
  });
});
