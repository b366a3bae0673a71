import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { describe, expect, it, onTestFinished } from 'vitest';
import { tempDir } from '@keel/testing';
import { startDemoHealthServer } from './demoHealth.js';
import { createDemoProject } from '../src/cli/demoProject.js';
import { loadConfig } from '../src/config/load.js';
import { resumeTask, runTask } from '../src/engine/runTask.js';
import { formatReplay, replayTask } from '../src/replay/replay.js';
import { createSqliteTaskStore } from '../src/store/sqliteTaskStore.js';
import { createHarness, task } from './helpers.js';
import { loadTaskFile } from '../src/task/taskFile.js';

/**
 * Records the demo task (plan, three coding rounds, two reviews, a failing and a passing test run,
 * a staging deploy behind a health check), approved by alice unless `approve: false`. With `http`,
 * staging's health check is an HTTP endpoint outside the project that checks whichever deploy root
 * `root.current` names, so a replay's redirected target can be checked too; without it, the demo's
 * own check script, as `keel demo` writes it.
 */
async function recordDemo(options: { http?: boolean; approve?: boolean } = {}) {
  const dir = await tempDir('keel-replay-');
  const root = { current: path.join(dir, 'deploys', 'staging') };
  const health = options.http === false ? undefined : await startDemoHealthServer(() => root.current);
  if (health !== undefined) onTestFinished(() => health.close());
  const demo = createDemoProject(dir, health === undefined ? {} : { stagingHealthUrl: health.url });
  const loaded = loadConfig(demo.config);
  const store = createSqliteTaskStore(loaded.stateDir);
  onTestFinished(() => store.close());
  const first = await runTask({ loaded, task: loadTaskFile(demo.task), store, env: process.env });
  // Production waits for a person: approve it, as `keel approve` does, and resume.
  expect(first.run.status).toBe('waiting');
  const [asked] = await store.listApprovals({ taskId: first.run.id, status: 'pending' });
  expect(asked?.tool).toBe('apply_deploy');
  if (options.approve === false) return { dir, root, demo, loaded, store, run: first.run, health };
  await store.decideApproval(asked!.id, { approve: true, by: 'alice', reason: null, now: new Date() });
  const { run } = await resumeTask({
    loaded,
    store,
    env: process.env,
    taskId: first.run.id,
    reason: 'approved',
  });
  expect(run.status).toBe('succeeded');
  return { dir, root, demo, loaded, store, run, health };
}

/** A chat endpoint that answers every request with a 500 and counts them. */
async function failingModelEndpoint() {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    res
      .writeHead(500, { 'content-type': 'application/json' })
      .end('{"error":{"message":"no model may be called"}}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onTestFinished(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, requests };
}

/** The demo's config with changes, written beside it. */
function variantConfig(configFile: string, name: string, change: (config: any) => void) {
  const config = parse(readFileSync(configFile, 'utf8'));
  change(config);
  const file = path.join(path.dirname(configFile), name);
  writeFileSync(file, stringify(config));
  return loadConfig(file);
}

describe('keel replay', () => {
  it('replays the recorded demo task identically with no model call, and touches no configured target', async () => {
    const r = await recordDemo();
    const model = await failingModelEndpoint();
    // Every agent's model is now a real adapter whose endpoint fails: a model call would end the task.
    const loaded = variantConfig(r.demo.config, 'replay.config.yaml', (config) => {
      config.models.playbook = { provider: 'openai-compatible', model: 'no-model', baseURL: model.url };
      config.prices = { 'no-model': { inputPerMTok: 1, outputPerMTok: 1 } };
    });
    const releasesBefore = ['staging', 'production'].map((env) =>
      readlinkSync(path.join(r.dir, 'deploys', env, 'current')),
    );
    const headBefore = readFileSync(path.join(r.demo.project, '.git', 'HEAD'), 'utf8');
    const replayDir = await tempDir('keel-replay-world-');
    r.root.current = path.join(replayDir, 'deploys', 'staging');
    const report = await replayTask({
      store: r.store,
      taskId: r.run.id,
      loaded,
      env: process.env,
      dir: replayDir,
    });
    expect(model.requests).toEqual([]);
    expect({
      ...report,
      replayTaskId: 'x',
      notes: report.notes.filter((n) => !n.startsWith('the config')),
    }).toEqual({
      taskId: r.run.id,
      replayTaskId: 'x',
      identical: true,
      steps: 27,
      replayedSteps: 27,
      toolCalls: { recorded: 21, replayed: 21 },
      status: { recorded: 'succeeded', replayed: 'succeeded' },
      divergence: null,
      notes: [],
      dir: null,
    });
    // The replay deployed into its own copy of the target; the configured one is as it was.
    expect(
      ['staging', 'production'].map((env) => readlinkSync(path.join(r.dir, 'deploys', env, 'current'))),
    ).toEqual(releasesBefore);
    expect(existsSync(path.join(replayDir, 'deploys', 'staging', 'current'))).toBe(true);
    expect(existsSync(path.join(replayDir, 'deploys', 'production', 'current'))).toBe(true);
    const replayStore = createSqliteTaskStore(path.join(replayDir, '.replay', 'state'));
    onTestFinished(() => replayStore.close());
    // The production approval the recording got from a person was taken again, from the record.
    const replayApprovals = await replayStore.listApprovals({ taskId: report.replayTaskId });
    expect(replayApprovals.map((a) => [a.tool, a.status, a.decidedBy])).toEqual([
      ['apply_deploy', 'consumed', 'alice'],
    ]);
    expect(readFileSync(path.join(r.demo.project, '.git', 'HEAD'), 'utf8')).toBe(headBefore);
    const replayedCalls = await replayStore.listToolCalls(report.replayTaskId);
    expect(replayedCalls.map((c) => c.tool)).toEqual(
      (await r.store.listToolCalls(r.run.id)).map((c) => c.tool),
    );
    // A fresh idempotency namespace: every mutating call ran (no stored result was replayed).
    const keys = new Set((await r.store.listToolCalls(r.run.id)).map((c) => c.idempotencyKey));
    expect(replayedCalls.filter((c) => keys.has(c.idempotencyKey))).toEqual([]);
    const replayedModels = await replayStore.listModelCalls(report.replayTaskId);
    expect(new Set(replayedModels.map((m) => m.provider))).toEqual(new Set(['replay']));
  });

  it('reports a changed server result as a divergence at the step it happened', async () => {
    const r = await recordDemo();
    // The filesystem server now denies the tests directory: planning's second read (step 2) fails.
    const loaded = variantConfig(r.demo.config, 'changed.config.yaml', (config) => {
      config.servers.filesystem.args = [...config.servers.filesystem.args, '--deny', 'test/**'];
    });
    const replayDir = await tempDir('keel-replay-world-');
    r.root.current = path.join(replayDir, 'deploys', 'staging');
    const report = await replayTask({
      store: r.store,
      taskId: r.run.id,
      loaded,
      env: process.env,
      dir: replayDir,
    });
    expect(report.identical).toBe(false);
    expect(report.divergence).toMatchObject({
      kind: 'tool_result',
      step: 2,
      callIndex: 0,
      agent: 'planning',
      message: 'call 3 (filesystem.read_file at step 2): the result differs',
      expected: { outcome: 'ok', errorCode: null },
      actual: { outcome: 'error', errorCode: 'PERMISSION_DENIED' },
    });
    // The replay stopped at the divergence rather than acting on answers that no longer fit: the
    // replay model refused step 3.
    expect(report.replayedSteps).toBe(3);
    expect(report.status).toEqual({ recorded: 'succeeded', replayed: 'error' });
    expect(report.notes).toEqual(['the config differs from the one the task ran under']);
  });

  it('a replay with the deploy health endpoint failing diverges at the deploy, not before', async () => {
    const r = await recordDemo();
    const replayDir = await tempDir('keel-replay-world-');
    r.root.current = path.join(replayDir, 'nowhere');
    const report = await replayTask({
      store: r.store,
      taskId: r.run.id,
      loaded: r.loaded,
      env: process.env,
      dir: replayDir,
    });
    expect(report.divergence).toMatchObject({ kind: 'tool_result', step: 23, callIndex: 0, agent: 'deploy' });
    expect(report.divergence?.message).toBe('call 19 (deploy.apply_deploy at step 23): the result differs');
    // The endpoint answered (503: no live release there): the task's world differs, not the outside one.
    expect(report.divergence?.cause).toBeUndefined();
  });

  it('a health endpoint that is gone since the task ran is named as the outside world, not the task', async () => {
    const r = await recordDemo();
    await r.health!.close();
    const report = await replayTask({
      store: r.store,
      taskId: r.run.id,
      loaded: r.loaded,
      env: process.env,
      dir: await tempDir('keel-replay-world-'),
    });
    const url = r.health!.url;
    expect(report.divergence).toMatchObject({ kind: 'tool_result', step: 23, callIndex: 0, agent: 'deploy' });
    expect(report.divergence?.cause).toEqual({
      kind: 'outside_world',
      url,
      explanation: `the outside world changed, not the task: ${url} answered when the task ran, and the replay could not reach it (ECONNREFUSED) — an endpoint outside the task is gone or down`,
    });
    expect(formatReplay(report).split('\n').slice(0, 3)).toEqual([
      'DIVERGED at step 23, call 0 (deploy): tool_result',
      '  call 19 (deploy.apply_deploy at step 23): the result differs',
      `  cause: ${report.divergence!.cause!.explanation}`,
    ]);
  }, 240_000);

  it('the demo as keel demo writes it replays identically once its run is over, and while it waits', async () => {
    const r = await recordDemo({ http: false, approve: false });
    // Waiting at the production approval: the replay waits at the same request, as recorded.
    const waiting = await replayTask({
      store: r.store,
      taskId: r.run.id,
      loaded: r.loaded,
      env: process.env,
    });
    expect([waiting.identical, waiting.status, waiting.replayedSteps, waiting.toolCalls]).toEqual([
      true,
      { recorded: 'waiting', replayed: 'waiting' },
      26,
      { recorded: 20, replayed: 20 },
    ]);
    expect(formatReplay(waiting)).toBe('identical: 26 steps, 20 tool calls, ended waiting as recorded');
    const [asked] = await r.store.listApprovals({ taskId: r.run.id, status: 'pending' });
    await r.store.decideApproval(asked!.id, { approve: true, by: 'alice', reason: null, now: new Date() });
    const { run } = await resumeTask({
      loaded: r.loaded,
      store: r.store,
      env: process.env,
      taskId: r.run.id,
      reason: 'approved',
    });
    expect(run.status).toBe('succeeded');
    // Nothing of the first run is left running: the staging check is the project's own script.
    const done = await replayTask({ store: r.store, taskId: r.run.id, loaded: r.loaded, env: process.env });
    expect(formatReplay(done)).toBe('identical: 27 steps, 21 tool calls, ended succeeded as recorded');
  }, 300_000);

  it('starts from the recorded HEAD plus the recorded dirty and untracked files, whatever the workspace holds now', async () => {
    const h = await createHarness({ files: { 'notes.md': 'committed\n' } });
    const upstream = await tempDir('keel-replay-upstream-');
    execFileSync('git', ['init', '--quiet', '--bare', upstream]);
    execFileSync('git', ['remote', 'add', 'origin', upstream], { cwd: h.repo.dir });
    writeFileSync(path.join(h.repo.dir, 'notes.md'), 'dirty at the start\n');
    writeFileSync(path.join(h.repo.dir, 'draft.md'), 'untracked at the start\n');
    const read = (p: string) => ({ call: 'read_file', args: { path: p } });
    const { run } = await runTask({
      loaded: h.loaded,
      store: h.store,
      env: {},
      task: task({
        mode: 'single',
        tests: null,
        deploy: null,
        playbook: {
          coding: [
            [
              read('notes.md'),
              read('draft.md'),
              { call: 'write_file', args: { path: 'draft.md', content: 'written by the task\n' } },
              { submit: { version: 'change.v1', summary: 's', files: [], commit: null } },
            ],
          ],
        },
      }),
    });
    expect(run.status).toBe('succeeded');
    writeFileSync(path.join(h.repo.dir, 'notes.md'), 'changed since\n');
    const report = await replayTask({
      store: h.store,
      taskId: run.id,
      loaded: h.loaded,
      env: {},
      keep: true,
    });
    onTestFinished(() => rmSync(report.dir!, { recursive: true, force: true }));
    expect([report.identical, report.divergence, report.notes]).toEqual([true, null, []]);
    expect(readFileSync(path.join(report.dir!, 'ws', 'draft.md'), 'utf8')).toBe('written by the task\n');
    expect(readFileSync(path.join(report.dir!, 'ws', 'notes.md'), 'utf8')).toBe('dirty at the start\n');
    // The copy's remote is an empty bare repository of the replay's own, not the configured one.
    const remote = execFileSync('git', ['remote', 'get-url', 'origin'], {
      cwd: path.join(report.dir!, 'ws'),
      encoding: 'utf8',
    }).trim();
    expect(remote).toBe(path.join(report.dir!, '.replay', 'remotes', 'origin.git'));
  });
});
