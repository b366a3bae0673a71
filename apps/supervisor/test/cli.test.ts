import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { createGitRepo, git, tempDir } from '@keel/testing';
import { loadConfig } from '../src/config/load.js';
import { createSqliteTaskStore } from '../src/store/sqliteTaskStore.js';

const execFileAsync = promisify(execFile);
const bin = new URL('../dist/bin.js', import.meta.url).pathname;

async function keel(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [bin, ...args], {
      cwd,
      env: { ...process.env, KEEL_CONFIG: '' },
      maxBuffer: 256 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('keel demo', () => {
  it('runs the sample task through the four agents and the real servers, stops at the production approval, and finishes after keel approve', async () => {
    const dir = path.join(await tempDir('keel-demo-'), 'demo');
    const demo = await keel(['demo', '--dir', dir, '--quiet'], process.cwd());
    expect(demo.stderr).toBe('');
    expect(demo.code).toBe(0);
    const id = /keel show (t-\S+)/.exec(demo.stdout)?.[1];
    expect(id).toMatch(/^t-\d{8}-\d{6}-[0-9a-f]{6}$/);
    expect(demo.stdout).toContain(`task      ${id} (bugfix, orchestrated)\nstatus    waiting\n`);
    const approval = /keel approve (ap-[0-9a-f]{10}) --as NAME/.exec(demo.stdout)?.[1];
    expect(approval).toMatch(/^ap-[0-9a-f]{10}$/);
    // Staging went live through its health gate; production has nothing yet.
    expect(existsSync(path.join(dir, 'deploys', 'production'))).toBe(false);

    const pending = await keel(['approvals', '--json'], dir);
    expect(
      JSON.parse(pending.stdout).map((a: { id: string; tool: string; reasons: string[] }) => [
        a.id,
        a.tool,
        a.reasons,
      ]),
    ).toEqual([
      [
        approval,
        'apply_deploy',
        [
          "environment 'production' requires approval",
          'the task has read untrusted content (read_file at step 1), so no policy pre-approves it',
        ],
      ],
    ]);

    const approved = await keel(['approve', approval!, '--as', 'alice', '--quiet'], dir);
    expect(approved.stderr).toBe('');
    expect(approved.code).toBe(0);
    expect(approved.stdout).toContain(`task      ${id} (bugfix, orchestrated)\nstatus    succeeded\n`);
    for (const environment of ['staging', 'production']) {
      // Each environment's live release holds the fixed code.
      const release = new RegExp(`${environment} live \\((${environment}-[0-9a-f]{12})\\)`).exec(
        approved.stdout,
      )?.[1];
      expect(readlinkSync(path.join(dir, 'deploys', environment, 'current'))).toBe(`releases/${release}`);
      expect(readFileSync(path.join(dir, 'deploys', environment, 'current', 'math.js'), 'utf8')).toBe(
        readFileSync(path.join(dir, 'project', 'app', 'math.js'), 'utf8'),
      );
    }
    // An approval is consumed once: a second approve is refused, and the task has ended.
    const again = await keel(['approve', approval!, '--as', 'mallory'], dir);
    expect(again).toEqual({
      code: 2,
      stdout: '',
      stderr: `keel: approval ${approval} is already consumed (by alice)\nhint: a decision is final; the task goes on from it\n`,
    });

    // The coding agent's three rounds are three commits, in order.
    expect((await git(path.join(dir, 'project'), ['log', '--format=%s'])).trim().split('\n')).toEqual([
      'average() of an empty list is 0',
      'Fix average(): divide by the number of values',
      'Fix add(): it subtracted its arguments',
      'A small app with two bugs and a failing test',
    ]);

    const shown = await keel(['show', id!, '--json'], dir);
    expect(shown.code).toBe(0);
    const record = JSON.parse(shown.stdout) as {
      task: {
        status: string;
        run: { steps: number; toolCalls: Array<{ tool: string; ok: boolean }> };
        startingState: { git: { dirty: string[]; untracked: string[]; head: string } };
      };
      modelCalls: Array<{ agent: string }>;
      toolCalls: Array<{ agent: string; tool: string; idempotencyKey: string; outcome: string }>;
      events: Array<{
        type: string;
        data: { verdict?: string; contract?: string; value?: { verdict?: string } };
      }>;
    };
    expect(record.task.status).toBe('succeeded');
    expect(record.task.run.steps).toBe(27);
    expect(record.modelCalls.map((c) => c.agent)).toEqual([
      ...Array(3).fill('planning'),
      ...Array(4).fill('coding'),
      ...Array(2).fill('review'),
      ...Array(4).fill('coding'),
      ...Array(2).fill('review'),
      ...Array(4).fill('coding'),
      ...Array(2).fill('review'),
      ...Array(6).fill('deploy'),
    ]);
    const round = ['edit_file', 'git_add', 'git_commit', 'read_file'];
    expect(record.toolCalls.map((c) => c.tool)).toEqual([
      'read_file',
      'read_file',
      ...round,
      ...round,
      'run_tests',
      ...round,
      'run_tests',
      'plan_deploy',
      'apply_deploy',
      'plan_deploy',
      'apply_deploy',
    ]);
    expect(record.toolCalls.every((c) => c.outcome === 'ok')).toBe(true);
    expect(new Set(record.toolCalls.map((c) => c.idempotencyKey)).size).toBe(20);
    expect(
      record.events
        .filter((e) => e.type === 'contract_accepted')
        .map((e) => e.data.value?.verdict ?? e.data.contract),
    ).toEqual([
      'plan.v1',
      'change.v1',
      'request_changes',
      'change.v1',
      'approve',
      'change.v1',
      'approve',
      'deploy.v1',
      'deploy.v1',
    ]);
    expect(
      record.events.filter((e) => e.type === 'tests').map((e) => (e.data as { outcome: string }).outcome),
    ).toEqual(['failed', 'passed']);
    expect(record.task.startingState.git.dirty).toEqual([]);
    expect(record.task.startingState.git.head).toMatch(/^[0-9a-f]{40}$/);

    const runs = await keel(['runs', '--json'], dir);
    expect(JSON.parse(runs.stdout).map((r: { id: string; status: string }) => [r.id, r.status])).toEqual([
      [id, 'succeeded'],
    ]);

    const verify = await keel(['audit', 'verify'], dir);
    expect(verify).toEqual({
      code: 0,
      stdout: `ok: ${record.events.length} events, chain intact\n`,
      stderr: '',
    });
  });
});

describe('the event log', () => {
  it('names the first altered event, and survives a purge of bodies', async () => {
    const dir = path.join(await tempDir('keel-demo-'), 'demo');
    expect((await keel(['demo', '--dir', dir, '--quiet'], process.cwd())).code).toBe(0);
    const loaded = loadConfig(path.join(dir, 'keel.config.yaml'));

    const store = createSqliteTaskStore(loaded.stateDir);
    const purged = await store.purge(new Date(Date.now() + 60_000), new Date());
    expect(purged).toEqual({ modelCalls: 26, toolCalls: 19 });
    const [task] = await store.listTasks();
    const calls = await store.listModelCalls(task!.id);
    expect(calls.every((c) => c.request === null && c.raw === null && c.reply === null)).toBe(true);
    expect(calls.map((c) => c.inputTokens).every((n) => n > 0)).toBe(true);
    await store.close();
    expect((await keel(['audit', 'verify'], dir)).code).toBe(0);

    const db = new Database(path.join(loaded.stateDir, 'tasks.db'));
    db.prepare(
      "UPDATE events SET data = json_set(data, '$.status', 'failed') WHERE type = 'task_paused'",
    ).run();
    const seq = (db.prepare("SELECT seq FROM events WHERE type = 'task_paused'").get() as { seq: number })
      .seq;
    db.close();
    const verify = await keel(['audit', 'verify'], dir);
    expect(verify.code).toBe(1);
    expect(verify.stdout).toBe(
      `BROKEN at event ${seq}: content does not match its hash (${seq} events read)\n`,
    );
  });
});

describe('keel init', () => {
  it('writes a starter config and an example task that run as they are', async () => {
    const repo = await createGitRepo({ files: { 'README.md': '# hello\n' } });
    const init = await keel(['init'], repo.dir);
    expect(init).toEqual({
      code: 0,
      stdout: 'wrote keel.config.yaml\nwrote task.example.yaml\nnext: keel run task.example.yaml\n',
      stderr: '',
    });
    const again = await keel(['init'], repo.dir);
    expect(again.code).toBe(2);
    expect(again.stderr).toBe(
      `keel: ${path.join(repo.dir, 'keel.config.yaml')} exists\nhint: pass --force to overwrite it\n`,
    );
    const run = await keel(['run', 'task.example.yaml', '--json', '--quiet'], repo.dir);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const record = JSON.parse(run.stdout) as {
      status: string;
      steps: number;
      toolCalls: Array<{ tool: string }>;
    };
    expect([record.status, record.steps, record.toolCalls.map((c) => c.tool)]).toEqual([
      'succeeded',
      5,
      ['tree', 'git_status'],
    ]);
  });
});

describe('bad input', () => {
  it('a config with mistakes names every field, exit 2', async () => {
    const dir = await tempDir('keel-bad-');
    writeFileSync(
      path.join(dir, 'keel.config.yaml'),
      'version: 2\nservers:\n  fs: { builtin: nope }\nagents:\n  planning: { model: gpt, tools: {} }\nlimits: { steps: -1 }\ncolour: blue\n',
    );
    const result = await keel(['runs'], dir);
    expect(result.code).toBe(2);
    expect(result.stderr.split('\n')).toEqual([
      'keel: keel.config.yaml has 6 mistake(s):',
      '  version: Invalid input: expected 1',
      '  servers.fs: a server is { builtin: filesystem | git | test-runner | deploy, args? }, { command, args?, env?, cwd? } or { url, tokenEnv? }',
      '  agents.coding: Invalid input: expected object, received undefined',
      '  agents.review: Invalid input: expected object, received undefined',
      '  limits.steps: Too small: expected number to be >0',
      "  (top level): unknown field(s) 'colour'",
      'hint: fix the fields named above; `keel init --force` writes a commented starter config',
      '',
    ]);
  });

  it('a task file with mistakes names them; an unknown task id lists recent ones', async () => {
    const repo = await createGitRepo({ files: { 'README.md': '# hello\n' } });
    expect((await keel(['init'], repo.dir)).code).toBe(0);
    writeFileSync(path.join(repo.dir, 'bad.yaml'), 'type: Bad Type\ntitle: ""\nmode: swarm\n');
    const run = await keel(['run', 'bad.yaml'], repo.dir);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain(
      'keel: bad.yaml has 4 mistake(s):\n  type: Invalid string: must match pattern',
    );
    expect(run.stderr).toContain('\n  description: Invalid input: expected string, received undefined\n');
    const show = await keel(['show', 't-nope'], repo.dir);
    expect(show).toEqual({
      code: 2,
      stdout: '',
      stderr: "keel: no task 't-nope'\nhint: no tasks yet: `keel demo` runs one\n",
    });
    const missing = await keel(['run', 'missing.yaml'], repo.dir);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(
      `keel: cannot read ${path.join(repo.dir, 'missing.yaml')}: ENOENT\nhint: check the path; \`keel init\` writes a starter config\n`,
    );
    expect(readFileSync(path.join(repo.dir, 'keel.config.yaml'), 'utf8')).toContain('version: 1');
  });
});
