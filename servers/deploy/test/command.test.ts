import { execFile } from 'node:child_process';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ToolError } from '@keel/kit';
import { connectStdio, type ToolCallResult } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { binPath, createProject, startHealthEndpoint, startInProcess, type Project } from './helpers.js';

const run = promisify(execFile);
const platform = new URL('./fixtures/platform.mjs', import.meta.url).pathname;

/** A project whose `staging` deploys through the fake platform CLI into `<base>/remote`. */
async function commandProject(options: { current?: boolean; health?: string } = {}) {
  const probe = await createProject();
  const remote = path.join(path.dirname(probe.root), 'remote');
  await mkdir(remote);
  const target = {
    type: 'command',
    deploy: [process.execPath, platform, 'deploy', '{releaseId}', '{build}', remote],
    rollback: [process.execPath, platform, 'rollback', '{releaseId}', remote],
    ...(options.current === false ? {} : { current: [process.execPath, platform, 'current', remote] }),
  };
  const { stringify } = await import('yaml');
  await writeFile(
    probe.configFile,
    stringify({
      environments: {
        staging: {
          build: 'dist',
          target,
          ...(options.health === undefined ? {} : { policy: { health: { http: options.health } } }),
        },
      },
    }),
  );
  return {
    project: probe,
    remote,
    live: async () => await readFile(path.join(remote, 'current'), 'utf8').catch(() => null),
  };
}

const toolErrorOf = (result: ToolCallResult) => result._meta?.['keel/error'] as ToolError | undefined;

async function startBin(project: Project) {
  return await connectStdio({
    command: process.execPath,
    args: [binPath, '--root', project.root, '--state-dir', project.stateDir, '--log-level', 'warn'],
  });
}

async function gone(pid: number): Promise<void> {
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function waitForFile(file: string): Promise<string> {
  for (;;) {
    const content = await readFile(file, 'utf8').catch(() => undefined);
    if (content !== undefined && content !== '') return content;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('the command target', () => {
  it('deploys, diffs against the last release, and rolls back through the configured commands', async () => {
    const { project, live } = await commandProject();
    const deploy = await startInProcess(project);
    const first = await deploy.call('plan_deploy', { environment: 'staging' });
    const applied = await deploy.call('apply_deploy', { planId: first.planId });
    expect([applied.status, applied.current, applied.files, await live()]).toEqual([
      'live',
      first.releaseId,
      { copied: 0, linked: 0, bytesWritten: 0 },
      first.releaseId,
    ]);
    await writeFile(path.join(project.build, 'app.js'), 'two');
    const second = await deploy.call('plan_deploy', { environment: 'staging' });
    expect([second.baseRelease, second.files.changed.paths, second.files.unchanged.count]).toEqual([
      first.releaseId,
      ['app.js'],
      2,
    ]);
    await deploy.call('apply_deploy', { planId: second.planId });
    expect(await live()).toBe(second.releaseId);
    const back = await deploy.call('rollback', { environment: 'staging' });
    expect([back.from, back.to, back.changed, await live()]).toEqual([
      second.releaseId,
      first.releaseId,
      true,
      first.releaseId,
    ]);
    const environments = await deploy.call('list_environments', {});
    expect(environments.environments[0].target).toEqual({
      type: 'command',
      description: `${process.execPath} ${platform} deploy {releaseId} {build} ${path.join(path.dirname(project.root), 'remote')}`,
    });
  });

  it('a failed health check runs the rollback command', async () => {
    const health = await startHealthEndpoint(200);
    const { project, live } = await commandProject({ health: health.url });
    const deploy = await startInProcess(project);
    const first = await deploy.call('plan_deploy', { environment: 'staging' });
    await deploy.call('apply_deploy', { planId: first.planId });
    await writeFile(path.join(project.build, 'app.js'), 'broken');
    health.status = 500;
    const bad = await deploy.call('plan_deploy', { environment: 'staging' });
    const result = await deploy.call('apply_deploy', { planId: bad.planId });
    expect([result.status, result.current, result.health.ok, await live()]).toEqual([
      'rolled_back',
      first.releaseId,
      false,
      first.releaseId,
    ]);
  });

  it('a first release that fails its health check stays live when the target has nothing to go back to, and says so', async () => {
    const health = await startHealthEndpoint(503);
    const { project, live } = await commandProject({ health: health.url });
    const deploy = await startInProcess(project);
    const plan = await deploy.call('plan_deploy', { environment: 'staging' });
    const result = await deploy.call('apply_deploy', { planId: plan.planId });
    expect([result.status, result.current, result.health.ok, result.notes, await live()]).toEqual([
      'live',
      plan.releaseId,
      false,
      [
        `the health check failed and 'staging' has no earlier release to go back to: '${plan.releaseId}' stays live`,
      ],
      plan.releaseId,
    ]);
  });

  it('a deploy command that fails changes nothing and says why; the same plan applies once fixed', async () => {
    const { project, remote, live } = await commandProject();
    const deploy = await startInProcess(project);
    const plan = await deploy.call('plan_deploy', { environment: 'staging' });
    await writeFile(path.join(remote, 'fail'), '');
    const error = await deploy.error('apply_deploy', { planId: plan.planId });
    expect(error).toEqual({
      code: 'UNAVAILABLE',
      message: `the deploy command of 'staging' for '${plan.releaseId}' exited 7; nothing went live`,
      hint: 'Fix what the command reports (details.output), then apply the plan again.',
      retryable: false,
      details: { output: 'upload refused: quota exceeded' },
    });
    expect(await live()).toBe(null);
    await rm(path.join(remote, 'fail'));
    const applied = await deploy.call('apply_deploy', { planId: plan.planId });
    expect([applied.status, await live()]).toEqual(['live', plan.releaseId]);
    expect((await deploy.call('list_releases', { environment: 'staging' })).total).toBe(1);
  });

  it('kill -9 while the deploy command runs: the current command tells the retry nothing went live', async () => {
    const { project, remote, live } = await commandProject();
    const client = await startBin(project);
    const plan = (await client.callTool({ name: 'plan_deploy', arguments: { environment: 'staging' } }))
      .structuredContent!;
    await writeFile(path.join(remote, 'hold'), '');
    const pending = client
      .callTool({ name: 'apply_deploy', arguments: { planId: plan['planId'] } })
      .catch(() => undefined);
    // The deploy command has copied and waits before switching: kill the server and the command (a host crash).
    const commandPid = Number(await waitForFile(path.join(remote, `started-${String(plan['releaseId'])}`)));
    process.kill(client.pid!, 'SIGKILL');
    process.kill(commandPid, 'SIGKILL');
    await pending;
    await gone(client.pid!);
    await gone(commandPid);
    await rm(path.join(remote, 'hold'));
    expect(await live()).toBe(null);

    const retry = await startBin(project);
    const applied = (await retry.callTool({ name: 'apply_deploy', arguments: { planId: plan['planId'] } }))
      .structuredContent!;
    expect([applied['status'], applied['replayed'], applied['notes']]).toEqual([
      'live',
      false,
      [
        `cleaned up the interrupted deploy of '${String(plan['releaseId'])}' (plan '${String(plan['planId'])}'), which had not gone live`,
      ],
    ]);
    expect(await live()).toBe(plan['releaseId']);
    const listed = (await retry.callTool({ name: 'list_releases', arguments: { environment: 'staging' } }))
      .structuredContent!;
    expect((listed['releases'] as Array<{ releaseId: string }>).map((release) => release.releaseId)).toEqual([
      plan['releaseId'],
    ]);
  });

  it('without a current command, an interrupted deploy is UNKNOWN_STATE until a person resolves it', async () => {
    const { project, remote, live } = await commandProject({ current: false });
    const client = await startBin(project);
    const plan = (await client.callTool({ name: 'plan_deploy', arguments: { environment: 'staging' } }))
      .structuredContent!;
    const releaseId = String(plan['releaseId']);
    await writeFile(path.join(remote, 'hold'), '');
    const pending = client
      .callTool({ name: 'apply_deploy', arguments: { planId: plan['planId'] } })
      .catch(() => undefined);
    const commandPid = Number(await waitForFile(path.join(remote, `started-${releaseId}`)));
    process.kill(client.pid!, 'SIGKILL');
    await pending;
    await gone(client.pid!);
    await rm(path.join(remote, 'hold')); // the orphaned command finishes: the release is live, and the server cannot know
    await gone(commandPid);
    expect(await live()).toBe(releaseId);

    const retry = await startBin(project);
    const refused = await retry.callTool({ name: 'apply_deploy', arguments: { planId: plan['planId'] } });
    expect([toolErrorOf(refused)?.code, toolErrorOf(refused)?.message]).toEqual([
      'UNKNOWN_STATE',
      "'staging': an interrupted apply (phase switching) may or may not have gone live, and the target has no current command to ask",
    ]);
    const wrong = await run(process.execPath, [
      binPath,
      'resolve',
      'staging',
      '--live',
      'staging-000000000000',
      '--state-dir',
      project.stateDir,
    ]).catch((error: { code: number; stderr: string }) => error);
    expect([(wrong as { code: number }).code, (wrong as { stderr: string }).stderr]).toEqual([
      2,
      `the interrupted deploy was of '${releaseId}' over 'none'; --live must be one of those\n`,
    ]);
    const resolved = await run(process.execPath, [
      binPath,
      'resolve',
      'staging',
      '--live',
      releaseId,
      '--state-dir',
      project.stateDir,
    ]);
    expect(resolved.stdout).toBe(`recorded '${releaseId}' as live on 'staging' (not health-checked)\n`);
    const applied = (await retry.callTool({ name: 'apply_deploy', arguments: { planId: plan['planId'] } }))
      .structuredContent!;
    expect([applied['status'], applied['replayed'], applied['current']]).toEqual(['live', true, releaseId]);
    expect((await readdir(path.join(remote, 'releases'))).length).toBe(1);
  });
});
