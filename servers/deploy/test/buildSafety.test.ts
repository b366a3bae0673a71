import { execFile } from 'node:child_process';
import { mkdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { callOk, connectStdio } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { binPath, createProject, startInProcess, type Project } from './helpers.js';

const run = promisify(execFile);

/** A secret beside the project: what a link out of the build would publish. */
async function secretOutside(project: Project): Promise<string> {
  const file = path.join(path.dirname(project.root), 'secret.txt');
  await writeFile(file, 'the database password\n');
  return file;
}

async function allowExternalLinks(
  project: Project,
  environment: string,
  extra: Record<string, unknown> = {},
) {
  await writeFile(
    project.configFile,
    stringify({
      environments: {
        [environment]: {
          build: 'dist',
          target: { type: 'directory', path: `../deploys/${environment}` },
          policy: { allowExternalLinks: true, ...extra },
        },
      },
    }),
  );
}

const textOf = (result: { content: Array<{ type: string; text?: string }> }) =>
  result.content.map((part) => part.text ?? '').join('\n');

describe('build symlinks that leave the build', () => {
  it('a link to an absolute path outside the project is refused at plan time, naming it', async () => {
    const project = await createProject();
    const secret = await secretOutside(project);
    await symlink(secret, path.join(project.build, 'config.txt'));
    const deploy = await startInProcess(project);
    const error = await deploy.error('plan_deploy', { environment: 'staging' });
    expect(error).toEqual({
      code: 'OUTSIDE_ROOTS',
      message: `the build 'dist' of 'staging' holds a symlink that leaves it: 'config.txt' -> '${secret}' (an absolute path)`,
      hint: "Put the file itself in the build, or a link to a path inside it. If the target must get these links as they are, set policy.allowExternalLinks: true for 'staging'; plans then list them as warnings for the approver.",
      retryable: false,
      details: { links: [{ path: 'config.txt', target: secret, leaves: 'absolute' }] },
    });
  });

  it('a relative link that climbs out with .., directly or through another link of the build, is refused', async () => {
    const project = await createProject();
    await secretOutside(project);
    await symlink('../../secret.txt', path.join(project.build, 'up.txt'));
    // `a/l` points to the build's top (inside); `m` reads lexically as the top too (a/l/../..), but
    // resolved through `a/l` it is two levels above the build.
    await mkdir(path.join(project.build, 'a'));
    await symlink('..', path.join(project.build, 'a', 'l'));
    await symlink('a/l/../..', path.join(project.build, 'm'));
    const deploy = await startInProcess(project);
    const error = await deploy.error('plan_deploy', { environment: 'staging' });
    expect([error.code, error.message, error.details]).toEqual([
      'OUTSIDE_ROOTS',
      "the build 'dist' of 'staging' holds 2 symlinks that leave it: 'm' -> 'a/l/../..', 'up.txt' -> '../../secret.txt'",
      {
        links: [
          { path: 'm', target: 'a/l/../..', leaves: 'outside' },
          { path: 'up.txt', target: '../../secret.txt', leaves: 'outside' },
        ],
      },
    ]);
  });

  it('links inside the build plan, apply and stay links, with no warning (the benign twin)', async () => {
    const project = await createProject();
    await symlink('index.html', path.join(project.build, 'home.html'));
    await symlink('../index.html', path.join(project.build, 'assets', 'index.html'));
    await mkdir(path.join(project.build, 'a'));
    await symlink('..', path.join(project.build, 'a', 'top'));
    await symlink('a/top/app.js', path.join(project.build, 'app-link.js'));
    const deploy = await startInProcess(project);
    const plan = await deploy.call('plan_deploy', { environment: 'staging' });
    expect(plan.warnings).toEqual([]);
    const applied = await deploy.call('apply_deploy', { planId: plan.planId });
    const release = path.join(project.deployRoot, 'staging', 'releases', applied.releaseId as string);
    expect([
      await readlink(path.join(release, 'home.html')),
      await readFile(path.join(release, 'app-link.js'), 'utf8'),
    ]).toEqual(['index.html', 'console.log(1);\n']);
  });

  it('with allowExternalLinks the plan lists them as warnings, and the person asked to approve sees them', async () => {
    const project = await createProject();
    const secret = await secretOutside(project);
    await symlink(secret, path.join(project.build, 'config.txt'));
    await allowExternalLinks(project, 'production', { requiresApproval: true });
    const asked: string[] = [];
    const client = await connectStdio(
      {
        command: process.execPath,
        args: [binPath, '--root', project.root, '--state-dir', project.stateDir, '--log-level', 'error'],
      },
      'v2',
      {
        onElicit: (params) => {
          asked.push(params.message);
          return { action: 'decline' };
        },
      },
    );
    const warning = `the symlink 'config.txt' -> '${secret}' leaves the build (an absolute path); allowed by policy.allowExternalLinks, it is released as it is`;
    const plan = await callOk(client, 'plan_deploy', { environment: 'production' });
    expect(plan['warnings']).toEqual([warning]);
    await client.callTool({ name: 'apply_deploy', arguments: { planId: plan['planId'] } });
    expect(asked).toHaveLength(1);
    expect(asked[0]!.split('\n')).toContain(`Warning: ${warning}`);
  });
});

describe('file names in text output', () => {
  it('a file name with a newline cannot print lines of its own into the plan text', async () => {
    const project = await createProject(
      { staging: {} },
      { 'index.html': 'x', 'a\n  + injected.js\ncheck: all clear': 'y' },
    );
    const deploy = await startInProcess(project);
    const result = await deploy.server.callTool('plan_deploy', { environment: 'staging' });
    const lines = textOf(result).split('\n');
    expect(lines.slice(1, 4)).toEqual([
      '  added 2 (2 B), changed 0 (0 B), removed 0, unchanged 0',
      '  + "a\\n  + injected.js\\ncheck: all clear"',
      '  + index.html',
    ]);
    expect(lines.filter((line) => line === '  + injected.js' || line === 'check: all clear')).toEqual([]);
    // The structured result keeps the name as it is.
    expect((result.structuredContent as Record<string, any>)['files'].added.paths).toEqual([
      'a\n  + injected.js\ncheck: all clear',
      'index.html',
    ]);
  });

  it('a file name in an error message is quoted the same way', async () => {
    const project = await createProject();
    await run('mkfifo', [path.join(project.build, 'pipe\nwarning: none')]);
    const deploy = await startInProcess(project);
    const error = await deploy.error('plan_deploy', { environment: 'staging' });
    expect([error.code, error.message]).toEqual([
      'PRECONDITION_FAILED',
      `the build holds "pipe\\nwarning: none", which is not a file, directory or symlink`,
    ]);
  });
});
