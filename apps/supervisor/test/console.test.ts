import { userInfo } from 'node:os';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import path from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { tempDir } from '@keel/testing';
import { loadConfig } from '../src/config/load.js';
import { buildTrace, type TraceSpan } from '../src/console/trace.js';
import type { StatsReport } from '../src/observe/stats.js';
import { createPostgresTaskStore } from '../src/store/postgresTaskStore.js';
import { createSqliteTaskStore } from '../src/store/sqliteTaskStore.js';
import type { TaskStore } from '../src/store/taskStore.js';
import {
  haveChromium,
  launchBrowser,
  openPage as openBrowserPage,
  shoot,
  testConsoleToken,
} from './consoleBrowser.js';
import { createHarness } from './helpers.js';
import { freshDatabase, testDatabaseUrl } from './postgres.js';
import { below, running } from './processes.js';

const keelBin = new URL('../dist/bin.js', import.meta.url).pathname;

interface Keel {
  child: ChildProcess;
  pid: number;
  stdout: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The built `keel` bin as a real process; stopped (by its pid) when the test ends if still running. */
function keel(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Keel {
  const child = spawn(process.execPath, [keelBin, ...args], {
    cwd,
    env: { ...process.env, ...env, KEEL_APPROVER: 'ci' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, pid: child.pid!, stdout: () => out, exited };
}

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, ms = 30_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** `keel console --port 0` in a demo or harness directory; its URL once it listens. */
async function startConsole(cwd: string, env: NodeJS.ProcessEnv = {}): Promise<{ url: string; proc: Keel }> {
  const proc = keel(['console', '--port', '0'], cwd, { KEEL_CONSOLE_TOKEN: testConsoleToken, ...env });
  const url = await until('the console to listen', () => /keel console on (\S+)/.exec(proc.stdout())?.[1]);
  return { url, proc };
}

async function stop(proc: Keel): Promise<void> {
  if (proc.child.exitCode === null && proc.child.signalCode === null) process.kill(proc.pid, 'SIGINT');
  await proc.exited;
}

/** A demo project stopped at its production approval: its dir, store and the waiting task. */
/** `keel demo` stopped at its production approval; on the PostgreSQL store `databaseUrl` names, if given. */
async function demo(databaseUrl?: string) {
  const dir = path.join(await tempDir('keel-console-'), 'demo');
  const env = databaseUrl === undefined ? {} : { KEEL_DATABASE_URL: databaseUrl };
  const run = keel(['demo', '--dir', dir, '-q'], path.dirname(dir), env);
  expect(await run.exited).toEqual({ code: 0, signal: null });
  const store =
    databaseUrl === undefined
      ? createSqliteTaskStore(loadConfig(path.join(dir, 'keel.config.yaml')).stateDir)
      : await createPostgresTaskStore(databaseUrl);
  onTestFinished(() => store.close());
  const [task] = await store.listTasks();
  const [approval] = await store.listApprovals({ status: 'pending' });
  expect([task?.status, approval?.tool]).toEqual(['waiting', 'apply_deploy']);
  return { dir, env, store, taskId: task!.id, approvalId: approval!.id };
}

/** Preorder: the order the waterfall lists spans in. */
const flatten = (span: TraceSpan): Array<[string, string]> => [
  [span.kind, span.name],
  ...span.children.flatMap(flatten),
];

let browser: Browser;

const openPage = (url: string) => openBrowserPage(browser, url);

function rawRequest(
  url: string,
  options: { method: string; path: string; headers: Record<string, string>; body?: string },
): Promise<{ status: number; body: string }> {
  const target = new URL(options.path, url);
  return new Promise((resolve, reject) => {
    const req = request(target, { method: options.method, headers: options.headers }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

describe.skipIf(!haveChromium)('keel console in a real browser', () => {
  /** One demo task approved through the CLI and finished, and a console on its store (read-only here). */
  let finished: { dir: string; store: TaskStore; taskId: string; url: string; proc: Keel };
  let sharedDir: string | undefined;

  beforeAll(async () => {
    browser = await launchBrowser();
    // beforeAll has no onTestFinished: this directory is removed in afterAll.
    sharedDir = mkdtempSync(path.join(tmpdir(), 'keel-console-'));
    const dir = path.join(sharedDir, 'demo');
    const run = keel(['demo', '--dir', dir, '-q'], sharedDir);
    if ((await run.exited).code !== 0) throw new Error(`keel demo failed:\n${run.stdout()}`);
    const store = createSqliteTaskStore(loadConfig(path.join(dir, 'keel.config.yaml')).stateDir);
    const [approval] = await store.listApprovals({ status: 'pending' });
    const approve = keel(['approve', approval!.id, '--as', 'cli-approver', '-q'], dir);
    if ((await approve.exited).code !== 0) throw new Error(`keel approve failed:\n${approve.stdout()}`);
    const [task] = await store.listTasks();
    if (task?.status !== 'succeeded') throw new Error(`the approved demo task ended ${task?.status}`);
    finished = { dir, store, taskId: task!.id, ...(await startConsole(dir)) };
  }, 120_000);

  afterAll(async () => {
    if (finished !== undefined) {
      await stop(finished.proc);
      await finished.store.close();
    }
    await browser?.close();
    if (sharedDir !== undefined) rmSync(sharedDir, { recursive: true, force: true });
  });

  it('the runs list shows a finished demo task with its exact step count and cost, and filters by status', async () => {
    const task = await finished.store.getTask(finished.taskId);
    // The demo's playbook is deterministic: 26 steps to the approval, one more to finish the deploy.
    expect([task?.run?.steps, task?.run?.costUsd]).toEqual([27, 0]);
    const page = await openPage(`${finished.url}#/runs`);
    const row = page.locator(`[data-testid="run-row"][data-task="${finished.taskId}"]`);
    await row.waitFor();
    expect({
      status: await row.getByTestId('status').textContent(),
      steps: await row.getByTestId('steps').textContent(),
      cost: await row.getByTestId('cost').textContent(),
    }).toEqual({ status: 'succeeded', steps: '27', cost: '$0.0000' });
    await shoot(page, 'runs', '[data-testid="run-row"]');

    await page.getByTestId('filter-status').selectOption('failed');
    await page.getByText('No tasks match.').waitFor();
    await page.getByTestId('filter-status').selectOption('succeeded');
    await row.waitFor();
    expect(await page.locator('[data-testid="run-row"]').count()).toBe(1);

    await page.goto(`${finished.url}#/stats`);
    const stats = page.locator('[data-testid="stats-row"][data-type="bugfix"]');
    await stats.waitFor();
    // The figures of `keel stats` for the same window, as the page formats them.
    const cli = keel(['stats', '--json'], finished.dir);
    expect((await cli.exited).code).toBe(0);
    const [bugfix] = (JSON.parse(cli.stdout()) as StatsReport).types;
    // As the page formats a duration (console/src/dom.ts, ms): a demo on a loaded machine can pass a minute.
    const duration = (v: number) =>
      v >= 60_000
        ? `${(v / 60_000).toFixed(1)} min`
        : v >= 1000
          ? `${(v / 1000).toFixed(1)} s`
          : `${Math.round(v)} ms`;
    expect(await stats.locator('td').allTextContents()).toEqual([
      'bugfix',
      '1',
      '100%',
      '27.0',
      duration(bugfix!.p50LatencyMs),
      duration(bugfix!.p95LatencyMs),
      Math.round(bugfix!.meanInputTokens + bugfix!.meanOutputTokens).toLocaleString('en-US'),
      // The playbook reports no cache reads; one task's cost has no spread to measure.
      '0%',
      '$0.0000',
      '$0.0000',
      '$0.0000',
      '—',
      '—',
    ]);
    expect([
      bugfix?.type,
      bugfix?.tasks,
      bugfix?.meanSteps,
      bugfix?.cachedInputShare,
      bugfix?.costCv,
    ]).toEqual(['bugfix', 1, 27, 0, null]);
    expect(await page.getByTestId('chart').count()).toBe(8);
    await shoot(page, 'stats', '[data-testid="chart"]');
  });

  it("a run's waterfall shows every span of its trace, and the run's records", async () => {
    const id = finished.taskId;
    const [task, models, tools, events] = await Promise.all([
      finished.store.getTask(id),
      finished.store.listModelCalls(id),
      finished.store.listToolCalls(id),
      finished.store.listEvents(id),
    ]);
    const expected = flatten(buildTrace(task!, models, tools, events));
    expect(expected.filter(([kind]) => kind === 'chat')).toHaveLength(models.length);
    expect(expected.filter(([kind]) => kind === 'tool')).toHaveLength(tools.length);

    const page = await openPage(`${finished.url}#/runs/${id}`);
    await page.getByTestId('waterfall').waitFor();
    const shown = await page
      .locator('[data-testid="span"]')
      .evaluateAll((rows) => rows.map((r) => [r.getAttribute('data-kind'), r.getAttribute('data-name')]));
    expect(shown).toEqual(expected);
    expect(await page.getByTestId('model-call').count()).toBe(models.length);
    expect(await page.getByTestId('tool-call').count()).toBe(tools.length);
    expect(await page.getByTestId('event').count()).toBe(events.length);
    // A model call's full record loads when opened.
    await page.getByTestId('model-call').first().locator('summary').click();
    await page.getByText('system prompt sha256').first().waitFor();
    expect(await page.getByTestId('model-call').first().textContent()).toContain(models[0]!.systemSha256);
    const steps = page.locator('[data-testid="limit"][data-limit="steps"] .num');
    expect(await steps.textContent()).toBe('27 / 60');
    await shoot(page, 'run', '[data-testid="span"]');
  });

  /** The demo's production approval, given in the browser; the task finishes in the console's process. */
  async function approveInBrowser(databaseUrl?: string) {
    const d = await demo(databaseUrl);
    const { url, proc } = await startConsole(d.dir, d.env);
    onTestFinished(() => stop(proc));
    const page = await openPage(`${url}#/approvals`);
    const card = page.locator(`[data-testid="approval"][data-approval="${d.approvalId}"]`);
    await card.waitFor();
    expect(await card.locator('.reasons li').allTextContents()).toEqual([
      "environment 'production' requires approval",
      'the task has read untrusted content (read_file at step 1), so no policy pre-approves it',
    ]);
    await shoot(page, 'approvals', '[data-testid="approval"]');

    await page.getByTestId('who').fill('Ada Lovelace');
    await card.getByTestId('reason').fill('release window open');
    await card.getByTestId('approve').click();
    // 'approved …; task … resumes in the console', until the task has ended.
    await page.locator('#notice', { hasText: d.taskId }).waitFor();
    await page.goto(`${url}#/runs/${d.taskId}`);
    await page.locator('h1 [data-testid="status"]', { hasText: 'succeeded' }).waitFor({ timeout: 60_000 });
    // Once it ended, the notice says so instead of that it resumes.
    await page.locator('#notice', { hasText: `task ${d.taskId} ended succeeded: ` }).waitFor();
    expect(await page.locator('#notice').textContent()).toMatch(
      new RegExp(`^task ${d.taskId} ended succeeded: .*production live`),
    );
    // The resume ran in the console's process; its progress reached the page as it went.
    expect((await page.getByTestId('progress').textContent())?.trimEnd()).toMatch(
      /ended succeeded: .*production live/,
    );
    const granted = page.locator('[data-testid="event"][data-type="approval_granted"]');
    expect(await granted.locator('td').nth(3).textContent()).toBe(
      `tool="apply_deploy"  approval="${d.approvalId}"  by="Ada Lovelace"  reason="release window open"`,
    );

    const events = await d.store.listEvents(d.taskId);
    expect(events.filter((e) => e.type === 'approval_granted').map((e) => e.data)).toEqual([
      {
        approval: d.approvalId,
        tool: 'apply_deploy',
        argsSha256: (await d.store.getApproval(d.approvalId))?.argsSha256,
        by: 'Ada Lovelace',
        // Who was logged in where the approval was made, beside the name they typed.
        osUser: userInfo().username,
        reason: 'release window open',
      },
    ]);
    return {
      task: (await d.store.getTask(d.taskId))?.status,
      approval: (await d.store.getApproval(d.approvalId))?.status,
      productionLive: existsSync(path.join(d.dir, 'deploys', 'production', 'current', 'math.js')),
      eventChain: (await d.store.verifyEvents()).ok,
    };
  }

  const finishedInBrowser = {
    task: 'succeeded',
    approval: 'consumed',
    productionLive: true,
    eventChain: true,
  };

  it('approving the waiting production deploy in the browser resumes the task to its end, and the approver is in the audit log', async () => {
    expect(await approveInBrowser()).toEqual(finishedInBrowser);
  });

  it.skipIf(testDatabaseUrl === undefined)(
    `the same on the PostgreSQL store, which the console, the task and its servers share${testDatabaseUrl === undefined ? ' (skipped: KEEL_TEST_DATABASE_URL is not set)' : ''}`,
    async () => {
      const url = await freshDatabase('keel_console');
      expect(await approveInBrowser(url)).toEqual(finishedInBrowser);
      // The deploy server's audit log is in the same database: staging, then production, each deployed once.
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      const rows = await client.query<{ tool: string; outcome: string }>(
        "SELECT tool, outcome FROM keel_audit_log WHERE tool = 'apply_deploy' ORDER BY seq",
      );
      await client.end();
      expect(rows.rows).toEqual([
        { tool: 'apply_deploy', outcome: 'ok' },
        { tool: 'apply_deploy', outcome: 'ok' },
      ]);
    },
  );

  it('killing a running task from the browser ends it killed with no process left behind', async () => {
    const tools = { tests: ['run_tests'] };
    const h = await createHarness({
      files: {
        'package.json': `${JSON.stringify({ name: 'sleepy', private: true, type: 'module', scripts: { test: 'node --test' } })}\n`,
        'test/sleep.test.mjs':
          "import { test } from 'node:test';\n\ntest('sleeps for ten minutes', async () => {\n  await new Promise((resolve) => setTimeout(resolve, 600_000));\n});\n",
      },
      config: {
        servers: { tests: { builtin: 'test-runner', args: ['--root', '.'] } },
        agents: {
          planning: { model: 'playbook', tools },
          coding: { model: 'playbook', tools },
          review: { model: 'playbook', tools },
        },
      },
    });
    await writeFile(
      path.join(h.dir, 'sleep.task.yaml'),
      stringify({
        type: 'sleep',
        title: 'Run the sleeping test',
        description: 'Run the tests.',
        mode: 'single',
        tests: null,
        deploy: null,
        playbook: {
          coding: [
            [
              { call: 'run_tests', args: { fresh: true } },
              { submit: { version: 'change.v1', summary: 'nothing', files: [], commit: null } },
            ],
          ],
        },
      }),
    );
    const run = keel(['run', 'sleep.task.yaml', '--quiet'], h.dir);
    onTestFinished(async () => {
      if (run.child.exitCode === null && run.child.signalCode === null) process.kill(run.pid, 'SIGKILL');
      await run.exited;
    });
    const tree = await until('the sleeping test to run', () => {
      const procs = below(run.pid);
      return procs.some((p) => p.cmdline.includes('sleep.test.mjs')) ? procs : undefined;
    });
    const [task] = await h.store.listTasks({ status: 'running' });
    const { url, proc } = await startConsole(h.dir);
    onTestFinished(() => stop(proc));

    const page = await openPage(`${url}#/runs/${task!.id}`);
    await page.locator('h1 [data-testid="status"]', { hasText: 'running' }).waitFor();
    await page.getByTestId('who').fill('Grace Hopper');
    await page.getByTestId('kill').click();
    await page.locator('h1 [data-testid="status"]', { hasText: 'killed' }).waitFor();
    // The status can turn `killed` through the page's polling before the kill request's own
    // answer arrives and writes the notice: wait for the notice, then read it exactly.
    await page
      .getByTestId('notice')
      .filter({ hasText: `kill ${task!.id}: ` })
      .waitFor();
    expect(await page.getByTestId('notice').textContent()).toMatch(
      new RegExp(`^kill ${task!.id}: (acknowledged|forced)$`),
    );

    expect(await run.exited).toEqual({ code: 1, signal: null });
    expect((await h.store.getTask(task!.id))?.status).toBe('killed');
    const finishedEvents = (await h.store.listEvents(task!.id)).filter((e) => e.type === 'task_finished');
    expect(finishedEvents.map((e) => (e.data as { status: string }).status)).toEqual(['killed']);
    // Every process that ran below the task — server, test runner, the sleeping test — is gone.
    expect(tree.length).toBeGreaterThanOrEqual(3);
    expect(tree.filter(running)).toEqual([]);
    expect(below(run.pid)).toEqual([]);
  });

  it('refuses a state-changing request from a foreign origin, without the page token, or for a foreign host', async () => {
    const login = `keel_console_token=${testConsoleToken}`;
    const html = (await (await fetch(finished.url, { headers: { cookie: login } })).text()).match(
      /name="keel-page-token" content="([^"]+)"/,
    )?.[1];
    expect(html).toMatch(/^[\w-]+\.[\w-]+$/);
    const own = new URL(finished.url).host;
    const post = (headers: Record<string, string>) =>
      rawRequest(finished.url, {
        method: 'POST',
        path: '/api/kill-all',
        headers: { 'content-type': 'application/json', host: own, cookie: login, ...headers },
        body: JSON.stringify({ by: 'mallory' }),
      });
    const foreign = await post({ origin: 'http://evil.example', 'x-keel-page-token': html! });
    expect([foreign.status, JSON.parse(foreign.body)]).toEqual([
      403,
      {
        error: {
          code: 'HTTP',
          message: "refused: origin http://evil.example is not this console's",
          hint: "state-changing requests come only from the console's own page: reload it and act there",
        },
      },
    ]);
    const noOrigin = await post({ 'x-keel-page-token': html! });
    expect(noOrigin.status).toBe(403);
    const noToken = await post({ origin: `http://${own}` });
    expect([noToken.status, JSON.parse(noToken.body).error.message]).toEqual([403, 'refused: no page token']);
    const forged = await post({
      origin: `http://${own}`,
      'x-keel-page-token': `${html!.split('.')[0]}.AAAA`,
    });
    expect([forged.status, JSON.parse(forged.body).error.message]).toEqual([403, 'refused: bad page token']);
    const rebound = await post({
      host: `evil.example:${new URL(finished.url).port}`,
      origin: 'http://evil.example:1',
    });
    expect(rebound.status).toBe(421);
    expect(await finished.store.getGlobalStop()).toBeNull();
    // The same request from the console's own page passes the guards (and names no task here).
    const legit = await rawRequest(finished.url, {
      method: 'POST',
      path: '/api/runs/t-none/kill',
      headers: {
        'content-type': 'application/json',
        host: own,
        cookie: login,
        origin: `http://${own}`,
        'x-keel-page-token': html!,
      },
      body: JSON.stringify({ by: 'ci' }),
    });
    expect([legit.status, JSON.parse(legit.body).error.message]).toEqual([404, "no task 't-none'"]);

    // Beyond loopback the console does not start without an access token.
    const open = keel(['console', '--host', '0.0.0.0', '--port', '0'], finished.dir, {
      KEEL_CONSOLE_TOKEN: '',
    });
    expect(await open.exited).toEqual({ code: 2, signal: null });
    expect(open.stdout()).toContain('keel: binding the console to 0.0.0.0 needs an access token');
  });
});
