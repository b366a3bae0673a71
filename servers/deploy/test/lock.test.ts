import { execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { promisify } from 'node:util';
import { createSqliteStateStore, openStateDatabase } from '@keel/kit';
import { callErr, callOk, connectStdio, tempDir, type BinCommand } from '@keel/testing';
import { describe, expect, it, onTestFinished } from 'vitest';
import { EnvironmentLock } from '../src/deploy/lock.js';
import { binPath, callUntilCrash, createProject, startHealthEndpoint, type Project } from './helpers.js';

const run = promisify(execFile);

/** Why the pid-namespace tests cannot run here, or undefined when they can (root, util-linux). */
const noNamespaces = (() => {
  try {
    execFileSync('unshare', ['--pid', '--fork', '--mount-proc', 'true'], { stdio: 'ignore' });
    execFileSync('nsenter', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch (error) {
    return `unshare --pid / nsenter unavailable (needs root and util-linux): ${(error as Error).message}`;
  }
})();
if (noNamespaces !== undefined) console.warn(`skipping the pid-namespace lock tests: ${noNamespaces}`);

interface PidNamespace {
  /** A command that runs `argv` inside the namespace; with `pid`, the program gets that pid there. */
  enter(argv: readonly string[], pid?: number): BinCommand;
  /** Runs `argv` inside the namespace and returns its output. */
  output(argv: readonly string[]): Promise<string>;
}

/** A new pid namespace (with its own /proc) on this host, torn down when the test finishes. */
async function pidNamespace(): Promise<PidNamespace> {
  const unshare = spawn('unshare', ['--pid', '--fork', '--kill-child', '--mount-proc', 'sleep', 'infinity'], {
    stdio: 'ignore',
  });
  const exited = once(unshare, 'exit');
  onTestFinished(async () => {
    unshare.kill('SIGKILL');
    await exited;
  });
  let init: number | undefined;
  while (init === undefined) {
    const children = readFileSync(`/proc/${unshare.pid}/task/${unshare.pid}/children`, 'utf8').trim();
    if (children !== '') init = Number(children.split(' ')[0]);
    else await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const into = ['--target', String(init), '--pid', '--mount'];
  return {
    enter: (argv, pid) => ({
      command: 'nsenter',
      args:
        pid === undefined
          ? [...into, ...argv]
          : // The next pid the namespace hands out is ns_last_pid + 1; the shell forks the program (not exec).
            [
              ...into,
              'sh',
              '-c',
              'echo "$1" > /proc/sys/kernel/ns_last_pid; shift; "$@"; exit $?',
              'sh',
              String(pid - 1),
              ...argv,
            ],
    }),
    output: async (argv) => (await run('nsenter', [...into, ...argv])).stdout,
  };
}

function serverArgs(project: Project): string[] {
  return [
    process.execPath,
    binPath,
    '--root',
    project.root,
    '--state-dir',
    project.stateDir,
    '--log-level',
    'warn',
  ];
}

/** Whether a pid is a process of this (the test's) pid namespace. */
function runsHere(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

async function healthChecked(): Promise<{
  project: Project;
  health: Awaited<ReturnType<typeof startHealthEndpoint>>;
}> {
  const health = await startHealthEndpoint(200);
  const project = await createProject({ staging: { policy: { health: { http: 'HEALTH' } } } });
  await writeFile(
    project.configFile,
    (await readFile(project.configFile, 'utf8')).replace('HEALTH', health.url),
  );
  return { project, health };
}

describe.skipIf(noNamespaces !== undefined)('the deploy lock across pid namespaces', () => {
  it('a holder in another pid namespace is not taken for dead because its pid is no process here', async () => {
    const ns = await pidNamespace();
    // A pid that no process of the test's namespace has: the holder gets it inside its namespace.
    let pid = 20_000;
    while (existsSync(`/proc/${pid}`)) pid++;
    const { project, health } = await healthChecked();
    const inside = await connectStdio(ns.enter(serverArgs(project), pid));
    const plan = await callOk(inside, 'plan_deploy', { environment: 'staging' });
    const arrived = health.hold(1);
    const pending = callOk(inside, 'apply_deploy', { planId: plan.planId });
    await arrived; // switched, holding the lock while its health check waits
    // The attack's premise: the same host name, and the holder's pid is a node there but nothing here.
    expect([(await ns.output(['cat', `/proc/${pid}/comm`])).trim(), runsHere(pid)]).toEqual(['node', false]);

    const outside = await connectStdio({
      command: serverArgs(project)[0]!,
      args: serverArgs(project).slice(1),
    });
    const refused = await callErr(outside, 'apply_deploy', { planId: plan.planId });
    expect([refused.code, refused.details?.['holderPlanId'], refused.details?.['phase']]).toEqual([
      'IN_PROGRESS',
      plan.planId,
      'checking',
    ]);
    health.release();
    const applied = await pending;
    expect([applied.status, applied.replayed, applied.current]).toEqual(['live', false, plan.releaseId]);
  });

  it('a holder whose pid a later process got is gone: the next apply takes the lock at once and finishes the deploy', async () => {
    const ns = await pidNamespace();
    const pid = 500;
    const project = await createProject();
    const armed = await connectStdio({
      ...ns.enter(serverArgs(project), pid),
      env: { KEEL_CRASH_AT: 'deploy.after-switch' },
    });
    const plan = await callOk(armed, 'plan_deploy', { environment: 'staging' });
    await callUntilCrash(armed, 'deploy.after-switch', 'apply_deploy', { planId: plan.planId });
    // A later process of the same namespace gets the dead holder's pid, and keeps running.
    const squatter = spawn('nsenter', ns.enter(['sleep', '600'], pid).args, { stdio: 'ignore' });
    onTestFinished(() => void squatter.kill('SIGKILL'));
    while ((await ns.output(['cat', `/proc/${pid}/comm`]).catch(() => '')).trim() !== 'sleep')
      await new Promise((resolve) => setTimeout(resolve, 10));

    const retry = await connectStdio(ns.enter(serverArgs(project)));
    const applied = await callOk(retry, 'apply_deploy', { planId: plan.planId });
    expect([applied.status, applied.replayed, applied.current, applied.notes]).toEqual([
      'live',
      true,
      plan.releaseId,
      [`finished the interrupted deploy of '${plan.releaseId}': live`],
    ]);
  });
});

describe('the deploy lock lease', () => {
  it('a holder on another host keeps the lock until its lease runs out', async () => {
    const dir = await tempDir('keel-deploy-lock-');
    const state = openStateDatabase(dir);
    onTestFinished(() => state.close());
    const clock = { now: Date.parse('2026-11-30T12:00:00Z') };
    const store = createSqliteStateStore(state.db, 'deploy', { now: () => clock.now });
    // What a server on another machine sharing this store wrote: its pid means nothing here.
    await store.put(
      'lock/staging',
      {
        owner: `1:0a1b2c3d@not-${hostname()}/4026531836`,
        operation: 'apply',
        planId: 'plan-there',
        acquiredAt: clock.now,
        phase: 'copying',
      },
      { ttlMs: 60_000 },
    );
    const request = {
      owner: `${process.pid}:test@${hostname()}/0`,
      startTime: undefined,
      operation: 'apply' as const,
      planId: 'plan-here',
      leaseMs: 60_000,
      now: clock.now,
    };
    const refused = await EnvironmentLock.acquire(store, 'staging', request);
    expect(refused).toMatchObject({ ok: false, holder: { planId: 'plan-there', phase: 'copying' } });
    clock.now += 60_001;
    const taken = await EnvironmentLock.acquire(store, 'staging', { ...request, now: clock.now });
    expect(taken.ok).toBe(true);
    if (taken.ok) await taken.lock.release();
  });
});
