import { execFile } from 'node:child_process';
import { readdir, readlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { callErr, callOk, connectStdio, tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import {
  crashPointNames,
  generateApprovalKeyPair,
  newNonce,
  parsePrivateKey,
  signApproval,
} from '../src/index.js';
import { binPath, callUntilCrash, createProject, type Project } from './helpers.js';

const run = promisify(execFile);

async function startBin(project: Project, flags: readonly string[] = [], env: Record<string, string> = {}) {
  return await connectStdio({
    command: process.execPath,
    args: [binPath, '--root', project.root, '--state-dir', project.stateDir, '--log-level', 'warn', ...flags],
    env,
  });
}

async function approvalSetup() {
  const keys = await tempDir('keel-deploy-keys-');
  const pair = generateApprovalKeyPair();
  const publicKey = path.join(keys, 'approver.pub');
  await writeFile(publicKey, pair.publicKeyPem);
  const project = await createProject({ production: { policy: { requiresApproval: true } } });
  const sign = (plan: Record<string, any>) => {
    const now = Date.now();
    return signApproval(
      {
        tool: 'apply_deploy',
        environment: 'production',
        planId: plan['planId'],
        planHash: plan['planHash'],
        approver: 'erin',
        issuedAt: now,
        expiresAt: now + 600_000,
        nonce: newNonce(),
      },
      parsePrivateKey(pair.privateKeyPem, 'test key'),
    );
  };
  return { project, flags: ['--approval-key', publicKey], sign };
}

describe('named crash points (KEEL_CRASH_AT)', () => {
  it('an unknown crash point stops the server at start (exit 2), naming the ones there are', async () => {
    const project = await createProject();
    const failed = await run(
      process.execPath,
      [binPath, '--root', project.root, '--state-dir', project.stateDir],
      {
        env: { ...process.env, KEEL_CRASH_AT: 'deploy.nowhere' },
      },
    ).catch((error: { code: number; stderr: string }) => error);
    expect((failed as { code: number }).code).toBe(2);
    expect((failed as { stderr: string }).stderr).toContain(
      `KEEL_CRASH_AT='deploy.nowhere' is not a crash point of keel-deploy`,
    );
    expect((failed as { stderr: string }).stderr).toContain(`Crash points: ${crashPointNames.join(', ')}.`);
  });
});

describe('kill -9 right after the approval is spent', () => {
  it('the retry with the same token and idempotency key finishes the deploy: one release, and the token stays single-use', async () => {
    const { project, flags, sign } = await approvalSetup();
    const armed = await startBin(project, flags, { KEEL_CRASH_AT: 'deploy.after-token-spent' });
    const plan = await callOk(armed, 'plan_deploy', { environment: 'production' });
    const token = sign(plan);
    const meta = { 'keel/approval': token, 'keel/idempotency-key': 'deploy-after-token-spent' };
    await callUntilCrash(armed, 'deploy.after-token-spent', 'apply_deploy', { planId: plan.planId }, meta);

    const retry = await startBin(project, flags);
    // The spent token is recorded with the attempt it allowed, so the retry knows whose it is.
    const status = await callOk(retry, 'deploy_status', { environment: 'production' });
    expect([status.current, status.interrupted]).toEqual([
      null,
      { operation: 'apply', planId: plan.planId, releaseId: plan.releaseId, phase: 'copying' },
    ]);
    const applied = await callOk(retry, 'apply_deploy', { planId: plan.planId }, meta);
    expect([applied.status, applied.replayed, applied.approvedBy, applied.current, applied.notes]).toEqual([
      'live',
      false,
      'erin',
      plan.releaseId,
      [
        `cleaned up the interrupted deploy of '${plan.releaseId}' (plan '${plan.planId}'), which had not gone live`,
      ],
    ]);
    expect(await readdir(path.join(project.deployRoot, 'production', 'releases'))).toEqual([plan.releaseId]);
    // Spent by the deploy it allowed: the same token under another key is refused.
    const again = await callErr(retry, 'apply_deploy', { planId: plan.planId }, { 'keel/approval': token });
    expect([again.code, again.details?.['reason']]).toEqual(['APPROVAL_REJECTED', 'reused']);
  });
});

describe('kill -9 at a crash point, then a retry', () => {
  it('deploy.after-switch: the target went live and the attempt says switching; the retry checks and records it', async () => {
    const project = await createProject();
    const armed = await startBin(project, [], { KEEL_CRASH_AT: 'deploy.after-switch' });
    const plan = await callOk(armed, 'plan_deploy', { environment: 'staging' });
    await callUntilCrash(armed, 'deploy.after-switch', 'apply_deploy', { planId: plan.planId });
    expect(await readlink(path.join(project.deployRoot, 'staging', 'current'))).toBe(
      `releases/${plan.releaseId}`,
    );

    const retry = await startBin(project);
    const status = await callOk(retry, 'deploy_status', { environment: 'staging' });
    expect([status.current, status.interrupted]).toEqual([
      plan.releaseId,
      { operation: 'apply', planId: plan.planId, releaseId: plan.releaseId, phase: 'switching' },
    ]);
    const applied = await callOk(retry, 'apply_deploy', { planId: plan.planId });
    expect([applied.status, applied.replayed, applied.current, applied.notes]).toEqual([
      'live',
      true,
      plan.releaseId,
      [`finished the interrupted deploy of '${plan.releaseId}': live`],
    ]);
    expect(await readdir(path.join(project.deployRoot, 'staging', 'releases'))).toEqual([plan.releaseId]);
  });
});

describe('a crash point armed for one idempotency key (KEEL_CRASH_AT=name@key)', () => {
  // What lets a chaos run arm a server for its next call while it still answers the one before.
  for (const point of ['deploy.after-switch', 'kit.after-claim'] as const)
    it(`${point}@second: the call keyed first deploys, the call keyed second dies there`, async () => {
      const project = await createProject();
      const armed = await startBin(project, [], { KEEL_CRASH_AT: `${point}@second` });
      const first = await callOk(armed, 'plan_deploy', { environment: 'staging' });
      const applied = await callOk(
        armed,
        'apply_deploy',
        { planId: first.planId },
        { 'keel/idempotency-key': 'first' },
      );
      expect([applied.status, applied.current]).toEqual(['live', first.releaseId]);
      await writeFile(path.join(project.build, 'index.html'), 'v2');
      const second = await callOk(armed, 'plan_deploy', { environment: 'staging' });
      await callUntilCrash(
        armed,
        point,
        'apply_deploy',
        { planId: second.planId },
        { 'keel/idempotency-key': 'second' },
      );
      expect(await readlink(path.join(project.deployRoot, 'staging', 'current'))).toBe(
        `releases/${point === 'deploy.after-switch' ? second.releaseId : first.releaseId}`,
      );
    });
});

describe('kill -9 between the release record and the pruning', () => {
  it('the replayed apply finishes the pruning: keep holds', async () => {
    const project = await createProject({ staging: { policy: { keep: 2 } } });
    const plain = await startBin(project);
    const ids: string[] = [];
    for (const version of ['v1', 'v2']) {
      await writeFile(path.join(project.build, 'index.html'), version);
      const plan = await callOk(plain, 'plan_deploy', { environment: 'staging' });
      ids.push((await callOk(plain, 'apply_deploy', { planId: plan.planId })).releaseId as string);
    }
    await plain.close();
    await writeFile(path.join(project.build, 'index.html'), 'v3');
    const armed = await startBin(project, [], { KEEL_CRASH_AT: 'deploy.between-release-and-prune' });
    const plan = await callOk(armed, 'plan_deploy', { environment: 'staging' });
    const meta = { 'keel/idempotency-key': 'deploy-v3' };
    await callUntilCrash(
      armed,
      'deploy.between-release-and-prune',
      'apply_deploy',
      { planId: plan.planId },
      meta,
    );
    const releases = path.join(project.deployRoot, 'staging', 'releases');
    // The kill landed between the two: v3 is recorded live and all three releases are still there.
    expect((await readdir(releases)).sort()).toEqual([...ids, plan.releaseId as string].sort());

    const retry = await startBin(project);
    const listed = await callOk(retry, 'list_releases', { environment: 'staging' });
    expect(
      listed.releases.map((release: { releaseId: string; seq: number }) => [release.releaseId, release.seq]),
    ).toEqual([
      [plan.releaseId, 3],
      [ids[1], 2],
      [ids[0], 1],
    ]);
    const applied = await callOk(retry, 'apply_deploy', { planId: plan.planId }, meta);
    expect([applied.status, applied.replayed, applied.current]).toEqual(['live', true, plan.releaseId]);
    expect((await readdir(releases)).sort()).toEqual([ids[1]!, plan.releaseId as string].sort());
  });
});

describe('the kit crash points in the deploy bin (KEEL_CRASH_AT=kit.…)', () => {
  it('kit.after-effect: the release went live but its key was never completed; the same-key retry answers it, deploying nothing again', async () => {
    const project = await createProject();
    const armed = await startBin(project, [], { KEEL_CRASH_AT: 'kit.after-effect' });
    const plan = await callOk(armed, 'plan_deploy', { environment: 'staging' });
    const meta = { 'keel/idempotency-key': 'kit-effect' };
    await callUntilCrash(armed, 'kit.after-effect', 'apply_deploy', { planId: plan.planId }, meta);
    const releases = path.join(project.deployRoot, 'staging', 'releases');
    expect(await readdir(releases)).toEqual([plan.releaseId]);

    const retry = await startBin(project);
    const applied = await callOk(retry, 'apply_deploy', { planId: plan.planId }, meta);
    expect([applied.status, applied.current]).toEqual(['live', plan.releaseId]);
    expect(await readdir(releases)).toEqual([plan.releaseId]);
    expect(await readlink(path.join(project.deployRoot, 'staging', 'current'))).toBe(
      `releases/${plan.releaseId}`,
    );
  });

  it('an unknown kit point stops the bin at start (exit 2), naming the kit’s', async () => {
    const project = await createProject();
    const failed = await run(
      process.execPath,
      [binPath, '--root', project.root, '--state-dir', project.stateDir],
      {
        env: { ...process.env, KEEL_CRASH_AT: 'kit.nowhere' },
      },
    ).then(
      () => undefined,
      (error: unknown) => error as { code: number; stderr: string },
    );
    expect(failed?.code).toBe(2);
    const last = JSON.parse(failed!.stderr.trim().split('\n').at(-1)!) as Record<string, unknown>;
    expect([last['msg'], last['hint']]).toEqual([
      "KEEL_CRASH_AT='kit.nowhere' is not a crash point of the kit",
      'Crash points: kit.after-claim, kit.after-effect.',
    ]);
  });
});
