import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '@keel/kit';
import { createGitRepo, git, tempDir } from '@keel/testing';
import { loadConfig } from '../src/config/load.js';
import { createSqliteTaskStore } from '../src/store/sqliteTaskStore.js';

const execFileAsync = promisify(execFile);
const bin = new URL('../dist/bin.js', import.meta.url).pathname;
/** A PATH with node and the system's tools but no `keel`: printed commands then name the bin. */
const plainPath = [path.dirname(process.execPath), '/usr/bin', '/bin'].join(path.delimiter);
/** How keel prints its own commands when no `keel` on PATH runs it. */
const prefix = `node ${bin}`;
/** The user's state dir for every keel this file runs: a config without `stateDir` keeps its state there. */
const stateHome = mkdtempSync(path.join(os.tmpdir(), 'keel-state-home-'));
afterAll(() => rmSync(stateHome, { recursive: true, force: true }));

async function keel(
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [bin, ...args], {
      cwd,
      env: { ...process.env, KEEL_CONFIG: '', PATH: plainPath, XDG_STATE_HOME: stateHome, ...env },
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
    const demo = await keel(['demo', '--dir', dir], process.cwd());
    // Progress goes to stderr, a line per step; the orchestrator's notes say each review's verdict
    // and each test run's result as they happen.
    const progress = demo.stderr.trimEnd().split('\n');
    expect(progress.every((line) => /^\[ *\d+\] /.test(line))).toBe(true);
    expect(
      progress.flatMap((line) => {
        const note = /^\[ *(\d+)\] orchestrator +• (.*?) {2,}steps /.exec(line);
        return note === null ? [] : [`${note[1]}: ${note[2]}`];
      }),
    ).toEqual([
      '9: review 1: request_changes (1 comment)',
      '15: review 2: approve',
      '15: tests failed: 2/3 passed',
      '21: review 3: approve',
      '21: tests passed: 3/3 passed',
    ]);
    expect(demo.code).toBe(0);
    const id = / show (t-\S+)/.exec(demo.stdout)?.[1];
    expect(id).toMatch(/^t-\d{8}-\d{6}-[0-9a-f]{6}$/);
    expect(demo.stdout).toContain(`task      ${id} (bugfix, orchestrated)\nstatus    waiting\n`);
    const approval = / approve (ap-[0-9a-f]{10}) --as NAME/.exec(demo.stdout)?.[1];
    expect(approval).toMatch(/^ap-[0-9a-f]{10}$/);
    // What to type next: the bin by its path (no keel on this PATH), after a cd into the demo.
    expect(demo.stdout.slice(demo.stdout.indexOf('The task waits'))).toBe(
      [
        'The task waits for a human: production requires an approval, and the deploy server accepts',
        'only a token the supervisor signs after a person approves (the model never sees it).',
        `  cd ${dir}`,
        `  ${prefix} approvals`,
        '      what waits, and why',
        `  ${prefix} approve ${approval} --as NAME`,
        '      approve: the task resumes, deploys to production, finishes',
        `  ${prefix} deny ${approval} --reason TEXT`,
        '      or refuse: the task ends with the reason',
        '',
        'where to look next:',
        `  cd ${dir}`,
        `  ${prefix} show ${id}`,
        '      every step, model call and tool call',
        `  ${prefix} runs`,
        '      all tasks in this store',
        `  ${prefix} trace ${id}`,
        '      the span tree: agents, model calls, tool calls',
        `  ${prefix} audit verify`,
        '      the hash-chained event log',
        `  ${prefix} replay ${id}`,
        '      the task again from its records, no model called: identical',
        '  git -C project log --oneline',
        '      the commits the coding agent made',
        '  ls -l deploys/*',
        '      the releases, and current -> the live one',
        '',
        '(no `keel` on your PATH runs this bin, so the commands above name it; `pnpm keel:link` in the checkout links `keel`)',
        '',
      ].join('\n'),
    );
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

    // Without --json: each request names its tool and every reason, always.
    const [asked] = JSON.parse(pending.stdout) as Array<{
      requestedAt: string;
      expiresAt: string;
      step: number;
    }>;
    const listed = await keel(['approvals'], dir);
    expect([listed.code, listed.stderr]).toEqual([0, '']);
    expect(listed.stdout.split('\n')).toEqual([
      `${approval}  approval  pending  task ${id}  step ${asked!.step}  asked ${asked!.requestedAt}  expires ${asked!.expiresAt}`,
      '    tool: deploy.apply_deploy',
      expect.stringMatching(
        /^ {4}what: apply_deploy of plan plan-[0-9a-f]{20} \(hash [0-9a-f]{12}…\) to production$/,
      ),
      "    why:  environment 'production' requires approval",
      '    why:  the task has read untrusted content (read_file at step 1), so no policy pre-approves it',
      '',
    ]);

    // keel resume takes --json like keel run: the record alone on stdout; still waiting, exit 3.
    const resumed = await keel(['resume', id!, '--json', '--quiet'], dir);
    expect([resumed.code, resumed.stderr, JSON.parse(resumed.stdout).status]).toEqual([3, '', 'waiting']);

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
      // The orchestrator's check, before any model call, that the tests the task needs can be found.
      'detect_projects',
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
    expect(new Set(record.toolCalls.map((c) => c.idempotencyKey)).size).toBe(21);
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
  }, 240_000);
});

describe('the event log', () => {
  it('names the first altered event, and survives a purge of bodies', async () => {
    const dir = path.join(await tempDir('keel-demo-'), 'demo');
    expect((await keel(['demo', '--dir', dir, '--quiet'], process.cwd())).code).toBe(0);
    const loaded = loadConfig(path.join(dir, 'keel.config.yaml'));

    const store = createSqliteTaskStore(loaded.stateDir);
    const purged = await store.purge(new Date(Date.now() + 60_000), new Date());
    expect(purged).toEqual({ modelCalls: 26, toolCalls: 20 });
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
    // The state goes to a directory of this project under the user's state dir, never into the project.
    const real = realpathSync(repo.dir);
    const state = path.join(
      stateHome,
      'keel',
      'projects',
      `${path.basename(real)}-${sha256Hex(real).slice(0, 12)}`,
    );
    expect(init).toEqual({
      code: 0,
      stdout: `wrote keel.config.yaml\nwrote task.example.yaml\nwrote .gitignore (.keel/)\nstate: ${state} (outside the project)\nnext: ${prefix} run task.example.yaml\n`,
      stderr: '',
    });
    expect(readFileSync(path.join(repo.dir, '.gitignore'), 'utf8')).toBe(
      "# Keel's state, when a config keeps it in the project\n.keel/\n",
    );
    const again = await keel(['init'], repo.dir);
    expect(again.code).toBe(2);
    expect(again.stderr).toBe(
      `keel: ${path.join(repo.dir, 'keel.config.yaml')} and ${path.join(repo.dir, 'task.example.yaml')} already exist\nhint: pass --force to overwrite, or name another directory: \`${prefix} init DIR\`\n`,
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
    // Nothing of Keel's landed in the project but what init wrote; the store is the user's alone.
    expect((await git(repo.dir, ['status', '--porcelain'])).split('\n').filter(Boolean).sort()).toEqual([
      '?? .gitignore',
      '?? keel.config.yaml',
      '?? task.example.yaml',
    ]);
    expect((statSync(path.join(state, 'tasks.db')).mode & 0o777).toString(8)).toBe('600');
    expect((statSync(state).mode & 0o777).toString(8)).toBe('700');
  });
});

describe('bad input', () => {
  it('keel kill --ack-ms outside 1-60000 is refused before any task is touched, exit 2', async () => {
    const dir = await tempDir('keel-ack-');
    expect(await keel(['kill', '--all', '--ack-ms', '0'], dir)).toEqual({
      code: 2,
      stdout: '',
      stderr:
        "error: option '--ack-ms <ms>' argument '0' is invalid. --ack-ms must be a whole number of milliseconds from 1 to 60000\n(run with --help for usage)\n",
    });
  });

  it('a config with mistakes names every field, exit 2', async () => {
    const dir = await tempDir('keel-bad-');
    writeFileSync(
      path.join(dir, 'keel.config.yaml'),
      'version: 2\nservers:\n  fs: { builtin: nope }\nagents:\n  planning: { model: gpt, tools: {} }\nlimits: { steps: -1 }\ncolour: blue\n',
    );
    const result = await keel(['runs'], dir);
    expect(result.code).toBe(2);
    expect(result.stderr.split('\n')).toEqual([
      'keel: keel.config.yaml has 7 mistake(s):',
      '  version: Invalid input: expected 1',
      '  servers.fs: a server is { builtin: filesystem | git | test-runner | deploy, args? }, { command, args?, env?, cwd? } or { url, tokenEnv? }',
      '  agents.coding: Invalid input: expected object, received undefined',
      '  agents.review: Invalid input: expected object, received undefined',
      '  limits.steps: Too small: expected number to be >0',
      "  (top level): unknown field(s) 'colour'",
      "  agents.planning.model: 'gpt' is not a key of models (playbook)",
      `hint: fix the fields named above; \`${prefix} init DIR\` writes a commented starter config showing every field`,
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
      stderr: `keel: no task 't-nope'\nhint: no tasks yet: \`${prefix} demo\` runs one\n`,
    });
    const missing = await keel(['run', 'missing.yaml'], repo.dir);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(
      `keel: cannot read ${path.join(repo.dir, 'missing.yaml')}: ENOENT\nhint: check the path; \`${prefix} init\` writes a starter config\n`,
    );
    expect(readFileSync(path.join(repo.dir, 'keel.config.yaml'), 'utf8')).toContain('version: 1');
  });
});

describe('first steps', () => {
  it('keel init in a folder that is not a git repository warns, and names the cd its next command needs', async () => {
    const parent = await tempDir('keel-init-');
    const init = await keel(['init', 'project'], parent);
    const project = path.join(parent, 'project');
    expect(init).toEqual({
      code: 0,
      stdout: `wrote project/keel.config.yaml\nwrote project/task.example.yaml\nwrote project/.gitignore (.keel/)\nstate: ${path.join(stateHome, 'keel', 'projects', `project-${sha256Hex(realpathSync(project)).slice(0, 12)}`)} (outside the project)\nnext:\n  cd ${project}\n  ${prefix} run task.example.yaml\n`,
      stderr: `warning: the workspace ${project} is not a git repository: the git server's tools, the task's recorded starting state and keel replay need one (git init, then commit what is there)\n`,
    });
  });

  it('a workspace that does not exist is named, not reported as node missing', async () => {
    const dir = await tempDir('keel-noworkspace-');
    const init = await keel(['init', '--workspace', 'nothere'], dir);
    expect(init.stderr).toBe(`warning: the workspace ${path.join(dir, 'nothere')} does not exist\n`);
    const run = await keel(['run', 'task.example.yaml', '--quiet'], dir);
    expect(run).toEqual({
      code: 2,
      stdout: '',
      stderr: `keel: the workspace ${path.join(dir, 'nothere')} does not exist (or is not a directory): server 'filesystem' starts there\nhint: \`workspace:\` in the config names it, relative to the config file: fix the path, or create the project there\n`,
    });
  });

  it('approving what does not exist names the command that lists what waits, with the config it used', async () => {
    const repo = await createGitRepo({ files: { 'README.md': '# hello\n' } });
    expect((await keel(['init'], repo.dir)).code).toBe(0);
    const elsewhere = await tempDir('keel-elsewhere-');
    const config = path.join(repo.dir, 'keel.config.yaml');
    expect(await keel(['approve', 'ap-0123456789', '--as', 'ada', '-c', config], elsewhere)).toEqual({
      code: 2,
      stdout: '',
      stderr: `keel: no approval 'ap-0123456789'\nhint: \`${prefix} approvals -c ${config}\` lists what waits (nothing now)\n`,
    });
  });

  it('keel audit with a config but no subcommand names the one it has, runnable as printed', async () => {
    const repo = await createGitRepo({ files: { 'README.md': '# hello\n' } });
    expect((await keel(['init'], repo.dir)).code).toBe(0);
    const parent = path.dirname(repo.dir);
    const config = path.join(path.basename(repo.dir), 'keel.config.yaml');
    const audit = await keel(['audit', '-c', config], parent);
    expect(audit).toEqual({
      code: 2,
      stdout: '',
      stderr: `keel: audit needs a subcommand\nhint: \`${prefix} audit verify -c ${config}\` checks the event log's hash chain\n`,
    });
    const hinted = /`([^`]+)`/.exec(audit.stderr)![1]!;
    const { stdout } = await execFileAsync('bash', ['-c', hinted], {
      cwd: parent,
      env: { ...process.env, PATH: plainPath },
    });
    expect(stdout).toBe('ok: 0 events, chain intact\n');
  });

  it('with keel on the PATH linked to this package, printed commands say keel and run as printed', async () => {
    const links = await tempDir('keel-path-');
    symlinkSync(new URL('../bin/keel.js', import.meta.url).pathname, path.join(links, 'keel'));
    const linked = [links, plainPath].join(path.delimiter);
    const repo = await createGitRepo({ files: { 'README.md': '# hello\n' } });
    const parent = path.dirname(repo.dir);
    const init = await keel(['init', repo.dir], parent, { PATH: linked });
    const next = init.stdout
      .split('next:\n')[1]!
      .trimEnd()
      .split('\n')
      .map((line) => line.trim());
    expect(next).toEqual([`cd ${repo.dir}`, 'keel run task.example.yaml']);
    // The lines as printed, in a shell that has the same PATH.
    const { stdout } = await execFileAsync('bash', ['-c', `${next.join(' && ')} --quiet`], {
      cwd: parent,
      env: { ...process.env, KEEL_CONFIG: '', PATH: linked },
    });
    expect(stdout.split('\n').slice(1, 3)).toEqual([
      'status    succeeded',
      'outcome   1 coding round(s), no tests, no deploy',
    ]);
    // A keel on the PATH that is some other program is not this keel.
    const other = await tempDir('keel-other-');
    symlinkSync('/bin/true', path.join(other, 'keel'));
    const second = await tempDir('keel-second-');
    const elsewhere = await keel(['init'], second, {
      PATH: [other, plainPath].join(path.delimiter),
    });
    expect(elsewhere.stdout.split('\n').at(-2)).toBe(`next: ${prefix} run task.example.yaml`);
  });
});
