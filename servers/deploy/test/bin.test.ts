import { execFile } from 'node:child_process';
import { mkdir, readdir, readFile, readlink, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { ToolError } from '@keel/kit';
import {
  connectHttp,
  connectStdio,
  startHttpServer,
  tempDir,
  type ClientKind,
  type ToolCallResult,
} from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { generateApprovalKeyPair, newNonce, parsePrivateKey, signApproval } from '../src/index.js';
import { binPath, createProject, startHealthEndpoint, writeTree, type Project } from './helpers.js';

const run = promisify(execFile);

async function startBin(project: Project, flags: readonly string[] = [], kind: ClientKind = 'v2') {
  return await connectStdio(
    {
      command: process.execPath,
      args: [
        binPath,
        '--root',
        project.root,
        '--state-dir',
        project.stateDir,
        '--log-level',
        'warn',
        ...flags,
      ],
    },
    kind,
  );
}

type Client = Awaited<ReturnType<typeof startBin>>;

async function callOk(
  client: Client,
  name: string,
  args: Record<string, unknown>,
  meta?: Record<string, unknown>,
) {
  const result = await client.callTool({
    name,
    arguments: args,
    ...(meta === undefined ? {} : { _meta: meta }),
  });
  if (result.isError === true) throw new Error(`${name} failed: ${result.content[0]?.text ?? ''}`);
  return result.structuredContent as Record<string, any>;
}

const toolErrorOf = (result: ToolCallResult) => result._meta?.['keel/error'] as ToolError | undefined;

/** Waits until a killed process is gone (reaped), so its pid no longer answers. */
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

describe('keel-deploy over stdio', () => {
  it.each(['v2', 'v1'] as const)(
    'lists its tools with true annotations and deploys (%s client)',
    async (kind) => {
      const project = await createProject();
      const client = await startBin(project, [], kind);
      const { tools } = await client.listTools();
      expect(
        [...tools]
          .sort((a, b) => a.name.localeCompare(b.name))
          .map((tool) => [
            tool.name,
            tool.annotations?.['readOnlyHint'],
            tool.annotations?.['destructiveHint'],
            tool.annotations?.['idempotentHint'],
            tool.annotations?.['openWorldHint'],
          ]),
      ).toEqual([
        ['apply_deploy', false, true, true, true],
        ['deploy_status', true, false, true, false],
        ['health_check', true, false, true, true],
        ['list_environments', true, false, true, false],
        ['list_releases', true, false, true, false],
        ['plan_deploy', true, false, true, false],
        ['rollback', false, false, false, true],
      ]);
      const plan = await callOk(client, 'plan_deploy', { environment: 'staging' });
      const applied = await callOk(client, 'apply_deploy', { planId: plan.planId });
      expect([applied.releaseId, applied.status, applied.current]).toEqual([
        plan.releaseId,
        'live',
        plan.releaseId,
      ]);
      expect(await callOk(client, 'list_environments', {})).toEqual({
        environments: [
          {
            name: 'staging',
            build: 'dist',
            target: { type: 'directory', description: '../deploys/staging' },
            requiresApproval: false,
            keep: 5,
            health: null,
            current: plan.releaseId,
            inProgress: null,
            interrupted: false,
          },
        ],
      });
    },
  );

  it('refuses a config with a mistake at start, naming the field, exit 2', async () => {
    const project = await createProject({ staging: { policy: { keep: 'all' } } });
    const failed = await run(process.execPath, [
      binPath,
      '--root',
      project.root,
      '--state-dir',
      project.stateDir,
    ]).catch((error: { code: number; stderr: string }) => error);
    expect((failed as { code: number }).code).toBe(2);
    expect((failed as { stderr: string }).stderr).toContain(
      'environments.staging.policy.keep: Invalid input: expected number, received string',
    );
  });

  it('resolves a relative --config against --root, wherever it is started from', async () => {
    const project = await createProject();
    await mkdir(path.join(project.root, 'deploy'));
    await rename(project.configFile, path.join(project.root, 'deploy', 'keel.deploy.yaml'));
    const elsewhere = await tempDir('keel-deploy-cwd-');
    const client = await connectStdio({
      command: process.execPath,
      args: [
        binPath,
        '--root',
        project.root,
        '--config',
        'deploy/keel.deploy.yaml',
        '--state-dir',
        project.stateDir,
      ],
      cwd: elsewhere,
    });
    const listed = await callOk(client, 'list_environments', {});
    expect(listed.environments.map((env: { name: string; build: string }) => [env.name, env.build])).toEqual([
      ['staging', 'dist'],
    ]);
  });

  it('keygen and approve mint a token the server accepts from _meta, once', async () => {
    const keys = await tempDir('keel-deploy-keys-');
    const privateKey = path.join(keys, 'approver.key');
    const publicKey = path.join(keys, 'approver.pub');
    const generated = await run(process.execPath, [
      binPath,
      'keygen',
      '--private-key',
      privateKey,
      '--public-key',
      publicKey,
    ]);
    expect(JSON.parse(generated.stdout)).toEqual({ privateKey, publicKey });
    expect([
      (await stat(privateKey)).mode & 0o777,
      (await readFile(publicKey, 'utf8')).startsWith('-----BEGIN PUBLIC KEY-----'),
    ]).toEqual([0o600, true]);
    const again = await run(process.execPath, [
      binPath,
      'keygen',
      '--private-key',
      privateKey,
      '--public-key',
      publicKey,
    ]).catch((error: { code: number }) => error);
    expect((again as { code: number }).code).toBe(2);

    const project = await createProject({ production: { policy: { requiresApproval: true } } });
    // A private key is refused as a server key: a server holding one could approve itself.
    const refused = await run(process.execPath, [
      binPath,
      '--root',
      project.root,
      '--state-dir',
      project.stateDir,
      '--approval-key',
      privateKey,
    ]).catch((error: { code: number; stderr: string }) => error);
    expect([
      (refused as { code: number }).code,
      (refused as { stderr: string }).stderr.includes('holds a private key'),
    ]).toEqual([2, true]);

    const client = await startBin(project, ['--approval-key', publicKey]);
    const plan = await callOk(client, 'plan_deploy', { environment: 'production' });
    const required = await client.callTool({ name: 'apply_deploy', arguments: { planId: plan.planId } });
    expect(toolErrorOf(required)?.code).toBe('APPROVAL_REQUIRED');
    const approved = await run(process.execPath, [
      binPath,
      'approve',
      plan.planId,
      '--signing-key',
      privateKey,
      '--environment',
      'production',
      '--plan-hash',
      plan.planHash,
      '--approver',
      'carol',
      '--ttl',
      '5m',
    ]);
    const token = approved.stdout.trim();
    expect(token).toMatch(/^keel-approval\.v1\.[\w-]+\.[\w-]+$/);
    const applied = await callOk(client, 'apply_deploy', { planId: plan.planId }, { 'keel/approval': token });
    expect([applied.status, applied.approvedBy]).toEqual(['live', 'carol']);
    const reused = await client.callTool({
      name: 'apply_deploy',
      arguments: { planId: plan.planId },
      _meta: { 'keel/approval': token },
    });
    expect(toolErrorOf(reused)?.details).toEqual({
      reason: 'reused',
      planId: plan.planId,
      environment: 'production',
    });

    const verified = await run(process.execPath, [
      binPath,
      'audit',
      'verify',
      '--state-dir',
      project.stateDir,
    ]);
    expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true, rows: 3 });
  });
});

describe('keel-deploy over Streamable HTTP', () => {
  it.each(['v2', 'v1'] as const)(
    'plans and applies with progress notifications (%s client)',
    async (kind) => {
      const files = Object.fromEntries(
        Array.from({ length: 40 }, (_, index) => [`f${index}.txt`, `${index}`]),
      );
      const project = await createProject({ staging: {} }, files);
      const server = await startHttpServer({
        command: process.execPath,
        args: [binPath, '--root', project.root, '--state-dir', project.stateDir, '--http', '--port', '0'],
      });
      const client = await connectHttp(server.url, kind);
      const planned = await client.callTool({ name: 'plan_deploy', arguments: { environment: 'staging' } });
      const plan = planned.structuredContent as Record<string, any>;
      const progress: Array<[number, number | undefined]> = [];
      const applied = await client.callTool(
        { name: 'apply_deploy', arguments: { planId: plan.planId } },
        { onprogress: (p) => progress.push([p.progress, p.total]) },
      );
      expect([
        applied.isError ?? false,
        applied.structuredContent?.['status'],
        applied.structuredContent?.['files'],
      ]).toEqual([false, 'live', { copied: 40, linked: 0, bytesWritten: 70 }]);
      // One notification per twentieth of the files (every 2 of 40).
      expect(progress).toEqual(Array.from({ length: 20 }, (_, index) => [(index + 1) * 2, 40]));
    },
  );
});

describe('kill -9 mid-apply, then a retry', () => {
  it('killed while copying: the retry cleans up and deploys exactly one release', async () => {
    const files = Object.fromEntries(
      Array.from({ length: 3000 }, (_, index) => [`chunk/${index}.bin`, `${index}`.padEnd(16_384, 'x')]),
    );
    const project = await createProject({ staging: {} }, files);
    const client = await startBin(project);
    const plan = await callOk(client, 'plan_deploy', { environment: 'staging' });
    const releases = path.join(project.deployRoot, 'staging', 'releases');
    const staging = path.join(releases, `.staging-${plan.releaseId}`);
    const pending = client
      .callTool({ name: 'apply_deploy', arguments: { planId: plan.planId } })
      .catch(() => undefined);
    // Kill as soon as the copy has started: the staging directory holds files.
    for (;;) {
      const copied = await readdir(path.join(staging, 'chunk')).catch(() => [] as string[]);
      if (copied.length > 0) break;
      await new Promise((resolve) => setImmediate(resolve));
    }
    process.kill(client.pid!, 'SIGKILL');
    await pending;
    await gone(client.pid!);
    // The kill landed mid-copy: the release never got its final name and nothing went live.
    expect((await readdir(path.join(staging, 'chunk'))).length).toBeLessThan(3000);
    expect(await readdir(releases)).toEqual([`.staging-${plan.releaseId}`]);
    await expect(readlink(path.join(project.deployRoot, 'staging', 'current'))).rejects.toMatchObject({
      code: 'ENOENT',
    });

    const retry = await startBin(project);
    const status = await callOk(retry, 'deploy_status', { environment: 'staging' });
    expect([status.inProgress, status.interrupted]).toEqual([
      null,
      { operation: 'apply', planId: plan.planId, releaseId: plan.releaseId, phase: 'copying' },
    ]);
    const applied = await callOk(retry, 'apply_deploy', { planId: plan.planId });
    expect([applied.status, applied.replayed, applied.files, applied.notes]).toEqual([
      'live',
      false,
      { copied: 3000, linked: 0, bytesWritten: 3000 * 16_384 },
      [
        `cleaned up the interrupted deploy of '${plan.releaseId}' (plan '${plan.planId}'), which had not gone live`,
      ],
    ]);
    expect(await readdir(releases)).toEqual([plan.releaseId]);
    expect(await readlink(path.join(project.deployRoot, 'staging', 'current'))).toBe(
      `releases/${plan.releaseId}`,
    );
    expect((await readdir(path.join(releases, plan.releaseId, 'chunk'))).length).toBe(3000);
  });

  it('killed during the health check after the switch: the retry checks again, records one release and replays', async () => {
    const health = await startHealthEndpoint(200);
    const project = await createProject({ staging: { policy: { health: { http: 'HEALTH' } } } });
    await writeFile(
      project.configFile,
      (await readFile(project.configFile, 'utf8')).replace('HEALTH', health.url),
    );
    const client = await startBin(project);
    const plan = await callOk(client, 'plan_deploy', { environment: 'staging' });
    const arrived = health.hold();
    const pending = client
      .callTool({ name: 'apply_deploy', arguments: { planId: plan.planId } })
      .catch(() => undefined);
    await arrived; // switched, and waiting on the health answer
    expect(await readlink(path.join(project.deployRoot, 'staging', 'current'))).toBe(
      `releases/${plan.releaseId}`,
    );
    process.kill(client.pid!, 'SIGKILL');
    await pending;
    await gone(client.pid!);
    health.release();

    const retry = await startBin(project);
    const applied = await callOk(retry, 'apply_deploy', { planId: plan.planId });
    expect([applied.status, applied.replayed, applied.health?.ok, applied.notes]).toEqual([
      'live',
      true,
      true,
      [`finished the interrupted deploy of '${plan.releaseId}': live`],
    ]);
    expect(health.hits).toBe(2);
    expect(await readdir(path.join(project.deployRoot, 'staging', 'releases'))).toEqual([plan.releaseId]);
    const listed = await callOk(retry, 'list_releases', { environment: 'staging' });
    expect(
      listed.releases.map((release: { releaseId: string; current: boolean; status: string }) => [
        release.releaseId,
        release.current,
        release.status,
      ]),
    ).toEqual([[plan.releaseId, true, 'live']]);
  });
});

describe('kill -9 of an approved deploy', () => {
  it('the retry with the same token finishes that deploy; a third use is refused as reused', async () => {
    const keys = await tempDir('keel-deploy-keys-');
    const pair = generateApprovalKeyPair();
    await writeFile(path.join(keys, 'approver.pub'), pair.publicKeyPem);
    const health = await startHealthEndpoint(200);
    const project = await createProject({
      production: { policy: { requiresApproval: true, health: { http: 'HEALTH' } } },
    });
    await writeFile(
      project.configFile,
      (await readFile(project.configFile, 'utf8')).replace('HEALTH', health.url),
    );
    const flags = ['--approval-key', path.join(keys, 'approver.pub')];
    const client = await startBin(project, flags);
    const plan = await callOk(client, 'plan_deploy', { environment: 'production' });
    const now = Date.now();
    const token = signApproval(
      {
        tool: 'apply_deploy',
        environment: 'production',
        planId: plan.planId,
        planHash: plan.planHash,
        approver: 'dana',
        issuedAt: now,
        expiresAt: now + 600_000,
        nonce: newNonce(),
      },
      parsePrivateKey(pair.privateKeyPem, 'test key'),
    );
    const arrived = health.hold();
    const pending = client
      .callTool({
        name: 'apply_deploy',
        arguments: { planId: plan.planId },
        _meta: { 'keel/approval': token },
      })
      .catch(() => undefined);
    await arrived;
    process.kill(client.pid!, 'SIGKILL');
    await pending;
    await gone(client.pid!);
    health.release();

    const retry = await startBin(project, flags);
    const applied = await callOk(retry, 'apply_deploy', { planId: plan.planId }, { 'keel/approval': token });
    expect([applied.status, applied.replayed, applied.approvedBy, applied.notes]).toEqual([
      'live',
      true,
      'dana',
      [`finished the interrupted deploy of '${plan.releaseId}': live`],
    ]);
    const third = await retry.callTool({
      name: 'apply_deploy',
      arguments: { planId: plan.planId },
      _meta: { 'keel/approval': token },
    });
    expect(toolErrorOf(third)?.details?.['reason']).toBe('reused');
    expect(await readdir(path.join(project.deployRoot, 'production', 'releases'))).toEqual([plan.releaseId]);
  });
});

it('a second process applying to the same environment gets IN_PROGRESS naming the holder plan', async () => {
  const health = await startHealthEndpoint(200);
  const project = await createProject({ staging: { policy: { health: { http: 'HEALTH' } } } });
  await writeFile(
    project.configFile,
    (await readFile(project.configFile, 'utf8')).replace('HEALTH', health.url),
  );
  await writeTree(project.build, { 'extra.txt': 'x' });
  const first = await startBin(project);
  const second = await startBin(project);
  const plan = await callOk(first, 'plan_deploy', { environment: 'staging' });
  const arrived = health.hold();
  const pending = callOk(first, 'apply_deploy', { planId: plan.planId });
  await arrived;
  const refused = await second.callTool({ name: 'apply_deploy', arguments: { planId: plan.planId } });
  expect([toolErrorOf(refused)?.code, toolErrorOf(refused)?.details?.['holderPlanId']]).toEqual([
    'IN_PROGRESS',
    plan.planId,
  ]);
  health.release();
  expect((await pending).status).toBe('live');
});
