import { lstat, readFile, readdir, readlink, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createProject, startHealthEndpoint, startInProcess, writeTree } from './helpers.js';

const hex = (length: number) => new RegExp(`^[0-9a-f]{${length}}$`);

describe('plan, apply, rollback on a directory target', () => {
  it('plans the first deploy, applies it and serves it through current', async () => {
    const project = await createProject();
    const deploy = await startInProcess(project);
    const plan = await deploy.call('plan_deploy', { environment: 'staging' });
    expect(plan).toEqual({
      planId: `plan-${plan.planHash.slice(0, 20)}`,
      planHash: expect.stringMatching(hex(64)),
      environment: 'staging',
      releaseId: `staging-${plan.planHash.slice(0, 12)}`,
      baseRelease: null,
      requiresApproval: false,
      files: {
        added: { count: 3, bytes: 35, paths: ['app.js', 'assets/logo.svg', 'index.html'] },
        changed: { count: 0, bytes: 0, paths: [] },
        removed: { count: 0, bytes: 0, paths: [] },
        unchanged: { count: 0, bytes: 0 },
      },
      total: { files: 3, bytes: 35 },
      checks: [
        'the build is re-hashed at apply and must match this plan file for file',
        'the environment must not have had a release or rollback since this plan',
        'one deploy at a time per environment (lock lease 60 s)',
        'no health check is configured: the release goes live without one',
      ],
      approveCommand: null,
      warnings: [],
    });
    // Planning changes nothing on the target.
    await expect(readdir(path.dirname(project.deployRoot))).resolves.not.toContain('deploys');

    const applied = await deploy.call('apply_deploy', { planId: plan.planId });
    expect(applied).toEqual({
      releaseId: plan.releaseId,
      environment: 'staging',
      planId: plan.planId,
      status: 'live',
      replayed: false,
      previousRelease: null,
      current: plan.releaseId,
      health: null,
      files: { copied: 3, linked: 0, bytesWritten: 35 },
      approvedBy: null,
      notes: [],
    });
    const staging = path.join(project.deployRoot, 'staging');
    expect(await readlink(path.join(staging, 'current'))).toBe(`releases/${plan.releaseId}`);
    expect(await readFile(path.join(staging, 'current', 'index.html'), 'utf8')).toBe('<h1>v1</h1>\n');
    expect(await readdir(path.join(staging, 'releases'))).toEqual([plan.releaseId]);
  });

  it('diffs against the live release and hard-links the files that did not change', async () => {
    const project = await createProject();
    const deploy = await startInProcess(project);
    const first = await deploy.call('plan_deploy', { environment: 'staging' });
    await deploy.call('apply_deploy', { planId: first.planId });

    await writeFile(path.join(project.build, 'app.js'), 'console.log(2);\n');
    await rm(path.join(project.build, 'index.html'));
    await writeTree(project.build, { 'new.txt': 'new\n' });
    const second = await deploy.call('plan_deploy', { environment: 'staging' });
    expect([second.baseRelease, second.files]).toEqual([
      first.releaseId,
      {
        added: { count: 1, bytes: 4, paths: ['new.txt'] },
        changed: { count: 1, bytes: 16, paths: ['app.js'] },
        removed: { count: 1, bytes: 12, paths: ['index.html'] },
        unchanged: { count: 1, bytes: 7 },
      },
    ]);
    const applied = await deploy.call('apply_deploy', { planId: second.planId });
    expect([applied.status, applied.previousRelease, applied.files]).toEqual([
      'live',
      first.releaseId,
      { copied: 2, linked: 1, bytesWritten: 20 },
    ]);
    const releases = path.join(project.deployRoot, 'staging', 'releases');
    const logoBefore = await stat(path.join(releases, first.releaseId, 'assets/logo.svg'));
    const logoAfter = await stat(path.join(releases, second.releaseId, 'assets/logo.svg'));
    const appBefore = await stat(path.join(releases, first.releaseId, 'app.js'));
    const appAfter = await stat(path.join(releases, second.releaseId, 'app.js'));
    expect([
      logoAfter.ino === logoBefore.ino,
      logoAfter.nlink,
      appAfter.ino === appBefore.ino,
      appAfter.nlink,
    ]).toEqual([true, 2, false, 1]);
    await expect(lstat(path.join(releases, second.releaseId, 'index.html'))).rejects.toMatchObject({
      code: 'ENOENT',
    });
  });

  it('cuts the planned path lists to maxPaths and says so', async () => {
    const files = Object.fromEntries(
      Array.from({ length: 12 }, (_, index) => [`f${String(index).padStart(2, '0')}.txt`, 'x']),
    );
    const project = await createProject({ staging: {} }, files);
    const deploy = await startInProcess(project);
    const plan = await deploy.call('plan_deploy', { environment: 'staging', maxPaths: 5 });
    expect(plan.files.added).toEqual({
      count: 12,
      bytes: 12,
      paths: ['f00.txt', 'f01.txt', 'f02.txt', 'f03.txt', 'f04.txt'],
      truncated: { limit: 5, unit: 'items', total: 12 },
    });
  });

  it('rolls back to the previous release, to a named one, and does nothing when it is already live', async () => {
    const project = await createProject();
    const deploy = await startInProcess(project);
    const ids: string[] = [];
    for (const version of ['v1', 'v2', 'v3']) {
      await writeFile(path.join(project.build, 'index.html'), version);
      const plan = await deploy.call('plan_deploy', { environment: 'staging' });
      ids.push((await deploy.call('apply_deploy', { planId: plan.planId })).releaseId as string);
    }
    const current = path.join(project.deployRoot, 'staging', 'current', 'index.html');
    expect(await deploy.call('rollback', { environment: 'staging' })).toEqual({
      environment: 'staging',
      from: ids[2],
      to: ids[1],
      changed: true,
      health: null,
      notes: [],
    });
    expect(await readFile(current, 'utf8')).toBe('v2');
    expect((await deploy.call('rollback', { environment: 'staging' })).to).toBe(ids[0]);
    expect(await readFile(current, 'utf8')).toBe('v1');
    const named = await deploy.call('rollback', { environment: 'staging', releaseId: ids[2] });
    const again = await deploy.call('rollback', { environment: 'staging', releaseId: ids[2] });
    expect([named.changed, again]).toEqual([
      true,
      { environment: 'staging', from: ids[2], to: ids[2], changed: false, health: null, notes: [] },
    ]);
    expect(await readFile(current, 'utf8')).toBe('v3');
    const missing = await deploy.error('rollback', {
      environment: 'staging',
      releaseId: 'staging-000000000000',
    });
    expect([missing.code, missing.message]).toEqual([
      'NOT_FOUND',
      "release 'staging-000000000000' is not on the target of 'staging'",
    ]);
    const listed = await deploy.call('list_releases', { environment: 'staging' });
    expect(
      listed.releases.map((release: { releaseId: string; current: boolean; seq: number }) => [
        release.releaseId,
        release.current,
        release.seq,
      ]),
    ).toEqual([
      [ids[2], true, 3],
      [ids[1], false, 2],
      [ids[0], false, 1],
    ]);
  });

  it('keeps only the configured number of releases, and always the live one', async () => {
    const project = await createProject({ staging: { policy: { keep: 2 } } });
    const deploy = await startInProcess(project);
    const ids: string[] = [];
    for (const version of ['v1', 'v2', 'v3']) {
      await writeFile(path.join(project.build, 'index.html'), version);
      const plan = await deploy.call('plan_deploy', { environment: 'staging' });
      ids.push((await deploy.call('apply_deploy', { planId: plan.planId })).releaseId as string);
    }
    expect((await readdir(path.join(project.deployRoot, 'staging', 'releases'))).sort()).toEqual(
      [ids[1], ids[2]].sort(),
    );
    const listed = await deploy.call('list_releases', { environment: 'staging' });
    expect(listed.releases.map((release: { releaseId: string }) => release.releaseId)).toEqual([
      ids[2],
      ids[1],
    ]);
  });
});

describe('the health gate', () => {
  it('rolls back by itself when the health check fails after the switch, and says so', async () => {
    const health = await startHealthEndpoint(200);
    const project = await createProject({ staging: { policy: { health: { http: 'HEALTH' } } } });
    await writeFile(
      project.configFile,
      (await readFile(project.configFile, 'utf8')).replace('HEALTH', health.url),
    );
    const deploy = await startInProcess(project);
    const good = await deploy.call('plan_deploy', { environment: 'staging' });
    const live = await deploy.call('apply_deploy', { planId: good.planId });
    expect([live.status, live.health]).toEqual([
      'live',
      { kind: 'http', ok: true, detail: `GET ${health.url} answered 200`, httpStatus: 200 },
    ]);

    await writeFile(path.join(project.build, 'index.html'), 'broken');
    health.status = 503;
    const bad = await deploy.call('plan_deploy', { environment: 'staging' });
    const result = await deploy.call('apply_deploy', { planId: bad.planId });
    expect(result).toEqual({
      releaseId: bad.releaseId,
      environment: 'staging',
      planId: bad.planId,
      status: 'rolled_back',
      replayed: false,
      previousRelease: good.releaseId,
      current: good.releaseId,
      health: {
        kind: 'http',
        ok: false,
        detail: `GET ${health.url} answered 503, expected 200`,
        httpStatus: 503,
      },
      files: { copied: 1, linked: 2, bytesWritten: 6 },
      approvedBy: null,
      notes: [],
    });
    expect(await readFile(path.join(project.deployRoot, 'staging', 'current', 'index.html'), 'utf8')).toBe(
      '<h1>v1</h1>\n',
    );
    expect(health.hits).toBe(2);
    const checked = await deploy.call('health_check', { environment: 'staging' });
    expect(checked.health.ok).toBe(false);
  });

  it('runs a command health check without a shell', async () => {
    const project = await createProject({
      staging: { policy: { health: { command: [process.execPath, '-e', 'process.exit(3)'] } } },
    });
    const deploy = await startInProcess(project);
    const plan = await deploy.call('plan_deploy', { environment: 'staging' });
    const result = await deploy.call('apply_deploy', { planId: plan.planId });
    expect([result.status, result.current, result.health]).toEqual([
      'rolled_back',
      null,
      { kind: 'command', ok: false, detail: `${process.execPath} exited 3`, exitCode: 3 },
    ]);
    await expect(lstat(path.join(project.deployRoot, 'staging', 'current'))).rejects.toMatchObject({
      code: 'ENOENT',
    });
  });
});

describe('pruning after failed deploys', () => {
  /** A project whose staging is health-checked against a real endpoint; `deploy(version, status)` plans and applies. */
  async function checkedProject(keep: number) {
    const health = await startHealthEndpoint(200);
    const project = await createProject({ staging: { policy: { keep, health: { http: 'HEALTH' } } } });
    await writeFile(
      project.configFile,
      (await readFile(project.configFile, 'utf8')).replace('HEALTH', health.url),
    );
    const deploy = await startInProcess(project);
    const releases = path.join(project.deployRoot, 'staging', 'releases');
    const apply = async (version: string, status: number) => {
      health.status = status;
      await writeFile(path.join(project.build, 'index.html'), version);
      const plan = await deploy.call('plan_deploy', { environment: 'staging' });
      const applied = await deploy.call('apply_deploy', { planId: plan.planId });
      expect(applied.status).toBe(status === 200 ? 'live' : 'rolled_back');
      return applied.releaseId as string;
    };
    return { deploy, releases, apply, onDisk: async () => (await readdir(releases)).sort() };
  }

  it('three failed deploys, then a good one: the release before it that passed its check stays, so rollback has somewhere to go', async () => {
    const { deploy, apply, onDisk } = await checkedProject(3);
    const good = await apply('v1', 200);
    const failed = [await apply('v2', 503), await apply('v3', 503), await apply('v4', 503)];
    const next = await apply('v5', 200);
    expect(await onDisk()).toEqual([good, failed[1]!, failed[2]!, next].sort());
    const back = await deploy.call('rollback', { environment: 'staging' });
    expect([back.from, back.to]).toEqual([next, good]);
  });

  it('after a rollback, three failed deploys keep the newest release that passed its check', async () => {
    const { deploy, apply, onDisk } = await checkedProject(2);
    const first = await apply('v1', 200);
    const newest = await apply('v2', 200);
    await deploy.call('rollback', { environment: 'staging' });
    const failed = [await apply('v3', 503), await apply('v4', 503), await apply('v5', 503)];
    expect(await onDisk()).toEqual([first, newest, failed[1]!, failed[2]!].sort());
  });
});

describe('stale plans and replays', () => {
  it('refuses a plan whose build changed since planning', async () => {
    const project = await createProject();
    const deploy = await startInProcess(project);
    const plan = await deploy.call('plan_deploy', { environment: 'staging' });
    await writeFile(path.join(project.build, 'app.js'), 'changed');
    const error = await deploy.error('apply_deploy', { planId: plan.planId });
    expect([error.code, error.message, error.retryable]).toEqual([
      'STALE_PLAN',
      `the build 'dist' changed since plan '${plan.planId}' was made`,
      false,
    ]);
    await expect(lstat(path.join(project.deployRoot, 'staging'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses a plan made before a later release, and one made before a rollback', async () => {
    const project = await createProject();
    const deploy = await startInProcess(project);
    const first = await deploy.call('plan_deploy', { environment: 'staging' });
    await deploy.call('apply_deploy', { planId: first.planId });
    await writeFile(path.join(project.build, 'app.js'), 'two');
    const second = await deploy.call('plan_deploy', { environment: 'staging' });
    const sameAsSecond = await deploy.call('plan_deploy', { environment: 'staging' });
    expect(sameAsSecond.planId).toBe(second.planId);
    await deploy.call('apply_deploy', { planId: second.planId });
    await writeFile(path.join(project.build, 'app.js'), 'three');
    const third = await deploy.call('plan_deploy', { environment: 'staging' });
    await deploy.call('rollback', { environment: 'staging' });
    const staleAfterRollback = await deploy.error('apply_deploy', { planId: third.planId });
    expect([staleAfterRollback.code, staleAfterRollback.message]).toEqual([
      'STALE_PLAN',
      `plan '${third.planId}' was made before the latest release or rollback of 'staging'`,
    ]);
    // The plan applied before the rollback is not a replay any more either.
    const staleApplied = await deploy.error('apply_deploy', { planId: second.planId });
    expect([staleApplied.code, staleApplied.message]).toEqual([
      'STALE_PLAN',
      `plan '${second.planId}' was applied as '${second.releaseId}', and 'staging' has changed since`,
    ]);
  });

  it('applying the same plan again returns the existing release', async () => {
    const project = await createProject();
    const deploy = await startInProcess(project);
    const plan = await deploy.call('plan_deploy', { environment: 'staging' });
    const first = await deploy.call('apply_deploy', { planId: plan.planId });
    const second = await deploy.call('apply_deploy', { planId: plan.planId });
    expect(second).toEqual({ ...first, replayed: true });
    expect(await readdir(path.join(project.deployRoot, 'staging', 'releases'))).toEqual([plan.releaseId]);
  });

  it('refuses a build directory that links out of the project root', async () => {
    const project = await createProject();
    const outside = path.join(path.dirname(project.root), 'outside');
    await rename(project.build, outside);
    await symlink(outside, project.build);
    const deploy = await startInProcess(project);
    const error = await deploy.error('plan_deploy', { environment: 'staging' });
    expect([error.code, error.hint]).toEqual([
      'OUTSIDE_ROOTS',
      'The build output must be a directory inside the project root (--root), not a link out of it.',
    ]);
  });

  it('an unknown plan or environment is NOT_FOUND with the way forward', async () => {
    const project = await createProject();
    const deploy = await startInProcess(project);
    expect(await deploy.error('apply_deploy', { planId: 'plan-nope' })).toEqual({
      code: 'NOT_FOUND',
      message: "plan 'plan-nope' does not exist (or is older than 7 days)",
      hint: 'Call plan_deploy for the environment and apply the planId it returns.',
      retryable: false,
    });
    expect(await deploy.error('plan_deploy', { environment: 'prod' })).toEqual({
      code: 'NOT_FOUND',
      message: "environment 'prod' is not in the deploy config",
      hint: 'Configured environments: staging.',
      retryable: false,
    });
  });
});

describe('one deploy at a time', () => {
  it('a second apply while one runs gets IN_PROGRESS naming the holder plan', async () => {
    const health = await startHealthEndpoint(200);
    const project = await createProject({ staging: { policy: { health: { http: health.url } } } });
    const deploy = await startInProcess(project);
    const plan = await deploy.call('plan_deploy', { environment: 'staging' });
    const arrived = health.hold();
    const first = deploy.call('apply_deploy', { planId: plan.planId });
    await arrived; // the first apply has switched and waits on its health check, holding the lock
    const status = await deploy.call('deploy_status', { environment: 'staging' });
    expect([status.inProgress?.operation, status.inProgress?.planId, status.inProgress?.phase]).toEqual([
      'apply',
      plan.planId,
      'checking',
    ]);
    const second = await deploy.error('apply_deploy', { planId: plan.planId });
    expect([
      second.code,
      second.retryable,
      second.details?.['holderPlanId'],
      second.details?.['phase'],
    ]).toEqual(['IN_PROGRESS', true, plan.planId, 'checking']);
    health.release();
    expect((await first).status).toBe('live');
    expect((await deploy.call('apply_deploy', { planId: plan.planId })).replayed).toBe(true);
  });
});
