import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { stringify } from 'yaml';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { haveChromium, launchBrowser, openPage, shoot, startConsole } from './consoleBrowser.js';
import { createHarness, type Harness } from './helpers.js';
import {
  below,
  keel,
  present,
  printedKeel,
  processesIn,
  reapAfter,
  startKeel,
  until,
  type Proc,
} from './processes.js';
import { escalatedWorld, hintPrefix, stuckReader, userMessages } from './scripted.js';

const loops = { repeat: 3, pingPong: 3, noProgressSteps: 10, onLoop: 'escalate' };

const sleepTest =
  "import { test } from 'node:test';\n\ntest('sleeps for ten minutes', async () => {\n  await new Promise((resolve) => setTimeout(resolve, 600_000));\n});\n";

/**
 * A project whose only test sleeps for ten minutes, with two tasks: `sleep.task.yaml` runs the tests
 * (a `keel run` of it sits in a long tool call until it is killed), `quick.task.yaml` hands in at once.
 */
async function sleepyHarness(): Promise<Harness> {
  const tools = { tests: ['run_tests'] };
  const h = await createHarness({
    files: {
      'package.json': `${JSON.stringify({ name: 'sleepy', private: true, type: 'module', scripts: { test: 'node --test' } })}\n`,
      'test/sleep.test.mjs': sleepTest,
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
  reapAfter(h.dir);
  const submit = { submit: { version: 'change.v1', summary: 'nothing', files: [], commit: null } };
  const taskFile = (type: string, turns: unknown[]) =>
    stringify({
      type,
      title: type === 'sleep' ? 'Run the sleeping test' : 'Hand in at once',
      description: 'Run the tests.',
      mode: 'single',
      tests: null,
      deploy: null,
      playbook: { coding: [turns] },
    });
  await writeFile(
    path.join(h.dir, 'sleep.task.yaml'),
    taskFile('sleep', [{ call: 'run_tests', args: { fresh: true } }, submit]),
  );
  await writeFile(path.join(h.dir, 'quick.task.yaml'), taskFile('quick', [submit]));
  return h;
}

describe.skipIf(!haveChromium)('keel console: escalations, the global stop, access beyond loopback', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('continuing an escalated task from the browser, with steps raised and a hint, resumes it to success and the model hears the hint', async () => {
    const { h, server, run, escalation } = await escalatedWorld(stuckReader, { loops });
    expect([run.status, escalation.kind, escalation.status, server.requests.length]).toEqual([
      'escalated',
      'escalation',
      'pending',
      3,
    ]);
    const { url } = await startConsole(h.dir);
    const page = await openPage(browser, `${url}#/approvals`);
    const card = page.locator(`[data-testid="approval"][data-approval="${escalation.id}"]`);
    await card.waitFor();
    expect(await card.locator('.reasons li').allTextContents()).toEqual(escalation.reasons);
    await shoot(page, 'escalation', '[data-testid="approval"]');

    await page.getByTestId('who').fill('Ada Lovelace');
    // A limit cannot be raised to nothing: refused with the way out, and nothing is decided.
    await card.getByTestId('raise').fill('steps:20');
    await card.getByTestId('continue').click();
    await page.locator('[data-testid="notice"].bad').waitFor();
    expect(await page.getByTestId('notice').textContent()).toBe(
      "'steps:20': raise limits as NAME=NUMBER, e.g. steps=80 toolCalls=300",
    );
    await card.getByTestId('raise').fill('steps=0');
    await card.getByTestId('continue').click();
    await page.getByTestId('notice').filter({ hasText: 'raise.steps' }).waitFor();
    expect(await page.getByTestId('notice').textContent()).toBe(
      'raise.steps: Too small: expected number to be >0 — send {"by": "your name", "raise": {"LIMIT": NUMBER}, "hint": "a message for the agent"}; limits: steps, tokens, wallClockMs, toolCalls, costUsd, reviewRounds, testRounds, contractRetries',
    );
    expect((await h.store.getApproval(escalation.id))?.status).toBe('pending');

    const hint = 'README.md will not change; hand in an empty change.';
    await card.getByTestId('raise').fill('steps=20, toolCalls=250');
    await card.getByTestId('reason').fill(hint);
    await card.getByTestId('continue').click();
    // 'continuing …' until the task has ended, then how it ended.
    await page.locator('#notice', { hasText: run.id }).waitFor();
    await page.goto(`${url}#/runs/${run.id}`);
    await page.locator('h1 [data-testid="status"]', { hasText: 'succeeded' }).waitFor({ timeout: 60_000 });
    await page
      .locator('#notice', {
        hasText: `task ${run.id} ended succeeded: 1 coding round(s), no tests, no deploy`,
      })
      .waitFor();
    // The resume ran in the console's process and its progress reached the page. The end's progress line
    // and the store's status change reach the page as two events in either order: wait for the line.
    await page.getByTestId('progress').filter({ hasText: 'ended succeeded' }).waitFor({ timeout: 30_000 });
    expect((await page.getByTestId('progress').textContent())?.trimEnd().split('\n').at(-1)).toBe(
      'ended succeeded: 1 coding round(s), no tests, no deploy',
    );

    // One more model call, the first to carry the hint (once, as a human's message); nothing recorded was asked again.
    expect(
      server.requests.map((r) => userMessages(r).filter((c) => c === `${hintPrefix}${hint}`).length),
    ).toEqual([0, 0, 0, 1]);
    const task = await h.store.getTask(run.id);
    expect([task?.status, task?.run?.steps, task?.run?.outcome.message]).toEqual([
      'succeeded',
      4,
      '1 coding round(s), no tests, no deploy',
    ]);
    const decided = {
      approval: escalation.id,
      by: 'Ada Lovelace',
      action: 'continue',
      raise: { steps: 20, toolCalls: 250 },
      hint,
    };
    expect(
      (await h.store.listEvents(run.id))
        .filter((e) => e.type === 'escalation_decided' || e.type === 'escalation_continued')
        .map((e) => [e.type, e.data]),
    ).toEqual([
      ['escalation_decided', decided],
      ['escalation_continued', decided],
    ]);
    expect((await h.store.getApproval(escalation.id))?.status).toBe('consumed');
    expect((await h.store.verifyEvents()).ok).toBe(true);
  });

  it('aborting an escalated task from the browser ends it failed with the reason, and the model is asked nothing more', async () => {
    const { h, server, run, escalation } = await escalatedWorld(stuckReader, { loops });
    expect(run.status).toBe('escalated');
    const { url } = await startConsole(h.dir);
    const page = await openPage(browser, `${url}#/approvals`);
    const card = page.locator(`[data-testid="approval"][data-approval="${escalation.id}"]`);
    await card.waitFor();
    await page.getByTestId('who').fill('Grace Hopper');
    // An abort needs a reason: refused, with the way out, and the task still waits.
    await card.getByTestId('abort').click();
    await page.locator('[data-testid="notice"].bad').waitFor();
    expect(await page.getByTestId('notice').textContent()).toBe(
      'reason: a reason is required — send {"by": "your name", "reason": "why (recorded)"}',
    );
    expect((await h.store.getTask(run.id))?.status).toBe('escalated');

    // A live update is in flight while the reason is typed: its page was fetched before the text was
    // there, and the swap must keep the text, not reset the field to what it held when the update began.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const intercepted = new Promise<void>(
      (resolve) =>
        void page.route('**/api/approvals', async (route) => {
          resolve();
          await held;
          await route.continue();
        }),
    );
    await page.evaluate(() => {
      // The page's own window (this file is typed for Node, not the DOM).
      const page = globalThis as unknown as {
        dispatchEvent(event: unknown): boolean;
        HashChangeEvent: new (type: string) => unknown;
      };
      page.dispatchEvent(new page.HashChangeEvent('hashchange'));
    });
    await intercepted;
    await card.getByTestId('reason').fill('the agent is stuck on README.md');
    await card.evaluate((el) => el.setAttribute('data-before-update', ''));
    release();
    await page.locator('[data-testid="approval"]:not([data-before-update])').waitFor();
    await page.unroute('**/api/approvals');
    expect(await card.getByTestId('reason').inputValue()).toBe('the agent is stuck on README.md');
    await card.getByTestId('abort').click();
    await page.getByText(`aborted ${run.id}`).waitFor();
    await page.goto(`${url}#/runs/${run.id}`);
    await page.locator('h1 [data-testid="status"]', { hasText: 'failed' }).waitFor();
    const outcome = `aborted by Grace Hopper (${escalation.id}): the agent is stuck on README.md`;
    expect(await page.getByTestId('outcome').textContent()).toBe(outcome);

    const task = await h.store.getTask(run.id);
    expect([task?.status, task?.endedAt === null, task?.run?.status, task?.run?.outcome]).toEqual([
      'failed',
      false,
      'failed',
      { message: outcome },
    ]);
    expect((await h.store.getApproval(escalation.id))?.status).toBe('denied');
    expect(
      (await h.store.listEvents(run.id)).filter((e) => e.type === 'escalation_decided').map((e) => e.data),
    ).toEqual([
      {
        approval: escalation.id,
        by: 'Grace Hopper',
        action: 'abort',
        reason: 'the agent is stuck on README.md',
      },
    ]);
    expect(server.requests.length).toBe(3);
  });

  it('"Kill all" in the browser stops every running task and refuses new ones; lifting the stop there lets a new run start and finish', async () => {
    const h = await sleepyHarness();
    const runs = [
      startKeel(['run', 'sleep.task.yaml', '--quiet'], h.dir),
      startKeel(['run', 'sleep.task.yaml', '--quiet'], h.dir),
    ];
    const isSleeper = (p: Proc) => p.cmdline.includes('sleep.test.mjs');
    const trees = await until('both sleeping tests', () => {
      const now = runs.map((r) => below(r.pid));
      return now.every((tree) => tree.some(isSleeper)) ? now : undefined;
    });
    const running = await h.store.listTasks({ status: 'running' });
    expect(running.length).toBe(2);

    const { url, proc } = await startConsole(h.dir);
    const page = await openPage(browser, `${url}#/runs`);
    await page.locator('[data-testid="run-row"]').nth(1).waitFor();
    expect(await page.locator('[data-testid="run-row"] [data-testid="status"]').allTextContents()).toEqual([
      'running',
      'running',
    ]);
    await page.getByTestId('who').fill('Grace Hopper');
    const asked: string[] = [];
    page.once('dialog', (dialog) => {
      asked.push(dialog.message());
      void dialog.accept();
    });
    await page.getByTestId('kill-all').click();
    await page.getByText('global stop: 2 task(s) killed').waitFor();
    expect(asked).toEqual([
      'Kill every task that has not ended, and refuse new ones until the stop is lifted?',
    ]);

    const stop = await h.store.getGlobalStop();
    expect(stop?.by).toBe('Grace Hopper');
    await page.locator('#stop:not([hidden])').waitFor();
    expect(await page.locator('#stop span').textContent()).toBe(
      `Global stop in force since ${stop!.at} (by Grace Hopper): no task starts.`,
    );
    expect(await page.getByTestId('kill-all').isHidden()).toBe(true);
    // The list follows the store through the page's event stream.
    await expect
      .poll(() => page.locator('[data-testid="run-row"] [data-testid="status"]').allTextContents(), {
        timeout: 30_000,
      })
      .toEqual(['killed', 'killed']);
    await shoot(page, 'global-stop', '#stop');

    // Both runs end (a killed task did not succeed), and nothing that ran below them is left.
    expect(await Promise.all(runs.map((r) => r.exited))).toEqual([
      { code: 1, signal: null },
      { code: 1, signal: null },
    ]);
    const tasks = await Promise.all(running.map((t) => h.store.getTask(t.id)));
    expect(tasks.map((t) => t?.status)).toEqual(['killed', 'killed']);
    // Each: the server, the sandbox leading the test run's group, two test runners, the sleeping test.
    expect(trees.map((tree) => tree.length)).toEqual([5, 5]);
    const left = await until('every process below the killed tasks to go', () => {
      const still = [
        ...trees.flat().filter(present),
        ...processesIn(h.dir).filter((p) => p.pid !== proc.pid),
      ];
      return still.length === 0 ? still : undefined;
    });
    expect(left).toEqual([]);

    const refused = await keel(['run', 'quick.task.yaml', '--quiet'], h.dir);
    expect(refused).toEqual({
      code: 2,
      stdout: '',
      stderr: `keel: a global stop is in force (since ${stop!.at}, by Grace Hopper): no task starts\nhint: ${printedKeel} resume-all lifts it\n`,
    });
    expect((await h.store.listTasks({ limit: 10 })).length).toBe(2);

    await page.getByTestId('resume-all').click();
    await page.getByText('global stop lifted').waitFor();
    await page.locator('#stop').waitFor({ state: 'hidden' });
    expect(await page.getByTestId('kill-all').isVisible()).toBe(true);
    expect(await h.store.getGlobalStop()).toBe(null);

    const accepted = await keel(['run', 'quick.task.yaml', '--quiet'], h.dir);
    expect([accepted.code, accepted.stderr]).toEqual([0, '']);
    const [quick] = await h.store.listTasks({ type: 'quick' });
    expect(quick?.status).toBe('succeeded');
    await expect
      .poll(() => page.locator('[data-testid="run-row"] [data-testid="status"]').allTextContents(), {
        timeout: 30_000,
      })
      .toEqual(['succeeded', 'killed', 'killed']);
  });

  it('beyond loopback the console needs its token: refused without it, working with it, and a state change without the page token or from another origin is refused', async () => {
    const h = await createHarness({});
    const token = 'console-token-for-the-browser-test';
    const { url, proc } = await startConsole(h.dir, ['--host', '0.0.0.0'], { KEEL_CONSOLE_TOKEN: token });
    const port = new URL(url).port;
    expect(proc.stdout()).toBe(
      `keel console on http://0.0.0.0:${port}/ (open it with ?token=<KEEL_CONSOLE_TOKEN>)\nCtrl-C stops it\n`,
    );
    const base = `http://127.0.0.1:${port}/`;
    const context = await browser.newContext();
    onTestFinished(() => context.close());
    const page = await context.newPage();

    const needsToken = {
      error: {
        code: 'HTTP',
        message: 'this console needs its access token',
        hint: 'open the address keel console printed (it ends in ?token=…), or /?token=KEEL_CONSOLE_TOKEN when it was started with one; the page keeps it in a cookie',
      },
    };
    for (const address of [base, `${base}?token=not-the-console-token`, `${base}api/runs`]) {
      const refused = await page.goto(address);
      expect([address, refused?.status(), await refused?.json()]).toEqual([address, 401, needsToken]);
    }
    expect(await context.cookies()).toEqual([]);

    const opened = await page.goto(`${base}?token=${token}`);
    expect([opened?.status(), page.url()]).toEqual([200, base]);
    expect(
      (await context.cookies()).map((c) => ({
        name: c.name,
        value: c.value,
        httpOnly: c.httpOnly,
        sameSite: c.sameSite,
        path: c.path,
      })),
    ).toEqual([{ name: 'keel_console_token', value: token, httpOnly: true, sameSite: 'Strict', path: '/' }]);
    await page.getByText('No tasks match.').waitFor();
    expect(await page.locator('h1').textContent()).toBe('Runs');

    // From the console's own page, but without the token it signs into the page: refused.
    const bare = await page.evaluate(async () => {
      const res = await fetch('/api/kill-all', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ by: 'mallory' }),
      });
      return [res.status, await res.json()];
    });
    const ownPageOnly =
      "state-changing requests come only from the console's own page: reload it and act there";
    expect(bare).toEqual([
      403,
      { error: { code: 'HTTP', message: 'refused: no page token', hint: ownPageOnly } },
    ]);

    // From a page of another origin on the same host, which the cookie reaches (same site): the
    // classic cross-site form that posts JSON as text/plain. Refused for its origin.
    const foreign = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(
        `<!doctype html><title>elsewhere</title><form method="post" action="${base}api/kill-all" enctype="text/plain"><input type="hidden" name='{"by":"mallory","x":"' value='"}'><button>win a prize</button></form>`,
      );
    });
    await new Promise<void>((resolve) => foreign.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => foreign.close(() => resolve())));
    const foreignOrigin = `http://127.0.0.1:${(foreign.address() as AddressInfo).port}`;
    const other = await context.newPage();
    await other.goto(`${foreignOrigin}/`);
    const [crossSite] = await Promise.all([
      other.waitForResponse((res) => res.url() === `${base}api/kill-all`),
      other.getByRole('button', { name: 'win a prize' }).click(),
    ]);
    expect([crossSite.status(), await crossSite.json()]).toEqual([
      403,
      {
        error: {
          code: 'HTTP',
          message: `refused: origin ${foreignOrigin} is not this console's`,
          hint: ownPageOnly,
        },
      },
    ]);
    expect(await h.store.getGlobalStop()).toBe(null);

    // The console's own controls, with the token and the page token, work.
    await page.getByTestId('who').fill('Ada Lovelace');
    page.once('dialog', (dialog) => void dialog.accept());
    await page.getByTestId('kill-all').click();
    await page.getByText('global stop: 0 task(s) killed').waitFor();
    expect((await h.store.getGlobalStop())?.by).toBe('Ada Lovelace');
    await page.getByTestId('resume-all').click();
    await page.getByText('global stop lifted').waitFor();
    expect(await h.store.getGlobalStop()).toBe(null);
  });
});
