import { setTimeout as sleep } from 'node:timers/promises';
import { createPathJail, createSqliteStateStore, openStateDatabase } from '@keel/kit';
import { connectStdio, tempDir, type McpTestClient } from '@keel/testing';
import { describe, expect, it, onTestFinished } from 'vitest';
// The built entry: a run loads this server's reporter modules in the child, which must be JavaScript.
import { createTestRunnerServer } from '../dist/index.js';
import { binPath, copyFixture } from './helpers.js';

type Client = McpTestClient & { pid: number | undefined };

async function start(root: string, stateDir: string): Promise<Client> {
  return await connectStdio({
    command: process.execPath,
    args: [binPath, '--root', root, '--state-dir', stateDir, '--log-level', 'warn'],
  });
}

async function ok(client: Client, name: string, args: Record<string, unknown>) {
  const result = await client.callTool({ name, arguments: args }, { timeout: 120_000 });
  if (result.isError === true) throw new Error(`${name} failed: ${result.content[0]?.text ?? ''}`);
  return result.structuredContent!;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Waits (bounded) until the process is gone; says whether it went. */
async function exited(pid: number): Promise<boolean> {
  for (let i = 0; i < 200 && alive(pid); i++) await sleep(25);
  return !alive(pid);
}

describe('runs live in the state store', () => {
  it('survive a restart of the server: get_run, the cache and rerun_failed find them', async () => {
    const root = await copyFixture('node-test');
    const stateDir = await tempDir('keel-tr-state-');
    const first = await start(root, stateDir);
    const run = await ok(first, 'run_tests', { files: ['test/math.test.js'] });
    const before = await ok(first, 'get_run', { runId: run['runId'], section: 'stdout' });
    await first.close();
    expect(await exited(first.pid!)).toBe(true);

    const second = await start(root, stateDir);
    expect(second.pid).not.toBe(first.pid);
    expect(await ok(second, 'get_run', { runId: run['runId'], section: 'stdout' })).toEqual(before);
    const again = await ok(second, 'run_tests', { files: ['test/math.test.js'] });
    expect([again['cached'], again['runId']]).toEqual([true, run['runId']]);
    const rerun = await ok(second, 'rerun_failed', { runId: run['runId'] });
    expect({ rerunOf: rerun['rerunOf'], outcome: rerun['outcome'], totals: rerun['totals'] }).toEqual({
      rerunOf: run['runId'],
      outcome: 'failed',
      // node:test reports the test the name filter left out as skipped.
      totals: { total: 2, passed: 0, failed: 1, skipped: 1 },
    });
  });

  it("two server processes sharing one state dir serve each other's runs", async () => {
    const root = await copyFixture('node-test');
    const stateDir = await tempDir('keel-tr-state-');
    const [a, b] = await Promise.all([start(root, stateDir), start(root, stateDir)]);
    expect(a.pid).not.toBe(b.pid);

    const fromA = await ok(a, 'run_tests', { files: ['test/math.test.js'] });
    expect(fromA['cached']).toBe(false);
    // B never ran it, yet reads it whole and serves it as its own cache hit.
    expect(await ok(b, 'get_run', { runId: fromA['runId'], section: 'failures' })).toEqual(
      await ok(a, 'get_run', { runId: fromA['runId'], section: 'failures' }),
    );
    const fromB = await ok(b, 'run_tests', { files: ['test/math.test.js'] });
    expect([fromB['cached'], fromB['runId']]).toEqual([true, fromA['runId']]);

    // And the other way round: a fresh run B stores is what A answers for that id.
    const fresh = await ok(b, 'run_tests', { files: ['test/math.test.js'], fresh: true });
    expect(fresh['runId']).not.toBe(fromA['runId']);
    const seenByA = await ok(a, 'get_run', { runId: fresh['runId'] });
    expect({ runId: seenByA['runId'], outcome: seenByA['outcome'], totals: seenByA['totals'] }).toEqual({
      runId: fresh['runId'],
      outcome: 'failed',
      totals: { total: 2, passed: 1, failed: 1, skipped: 0 },
    });
    expect([alive(a.pid!), alive(b.pid!)]).toEqual([true, true]);
  });
});

describe('library use', () => {
  it("keeps runs in the caller's own state store", async () => {
    const root = await copyFixture('node-test');
    const state = openStateDatabase(await tempDir('keel-tr-own-'));
    onTestFinished(() => state.close());
    const store = createSqliteStateStore(state.db, 'my-runs');
    const server = createTestRunnerServer({ jail: await createPathJail([root]), store });
    onTestFinished(() => server.close());
    const result = await server.callTool('run_tests', { files: ['test/math.test.js'] });
    const runId = (result.structuredContent as { runId: string }).runId;
    const stored = await store.get<{ runId: string; outcome: string }>(`run/${runId}`);
    expect({ runId: stored?.value.runId, outcome: stored?.value.outcome }).toEqual({
      runId,
      outcome: 'failed',
    });
  });
});
