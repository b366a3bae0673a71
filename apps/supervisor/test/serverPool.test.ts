import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { fixtureBin, tempDir } from '@keel/testing';
import type { ServerConfig } from '../src/config/schema.js';
import { createServerPool, type ServerPool } from '../src/mcp/pool.js';
import type { ConnectedServer } from '../src/mcp/servers.js';
import { present, readProc, until, type Proc } from './processes.js';

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
    expect(processOf(again)).toEqual(server);
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
