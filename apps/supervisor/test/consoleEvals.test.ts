import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EvalReport } from '../src/eval/report.js';
import {
  haveChromium,
  launchBrowser,
  openPage,
  shoot,
  startConsole,
  testConsoleToken,
} from './consoleBrowser.js';
import { createHarness } from './helpers.js';
import { chartBarsLaidOut, chartsDrawnForViewport } from './layoutProblems.mjs';
import { keel } from './processes.js';

const sample = fileURLToPath(new URL('../examples/eval/suite.yaml', import.meta.url));

const pct = (v: number) => `${(v * 100).toFixed(0)}%`;

describe.skipIf(!haveChromium)('keel console: eval reports', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('lists the evals keel eval wrote under the state dir and shows one with its charts, each bar the figure of report.json', async () => {
    const h = await createHarness({});
    // Beside a config, keel eval writes under the state dir's evals/, where the console looks.
    const evaluated = await keel(['eval', sample, '--repeat', '1', '--quiet'], h.dir);
    expect([evaluated.code, evaluated.stderr]).toEqual([0, '']);
    const evals = path.join(h.loaded.stateDir, 'evals');
    const [id, ...others] = readdirSync(evals);
    expect([id, others]).toEqual([expect.stringMatching(/^cart-fix-\d{8}-\d{6}$/), []]);
    expect(evaluated.stdout).toContain(`report: ${path.join(evals, id!, 'report.html')} (and report.json)`);
    const report = JSON.parse(readFileSync(path.join(evals, id!, 'report.json'), 'utf8')) as EvalReport;
    expect(report.configurations.map((c) => [c.configuration, c.runs])).toEqual([
      ['orchestrated', 1],
      ['single-agent', 1],
    ]);
    // An eval whose report is not one is listed with what is wrong, not dropped.
    const { seed: _seed, ...seedless } = report;
    mkdirSync(path.join(evals, 'hand-edited'));
    writeFileSync(path.join(evals, 'hand-edited', 'report.json'), JSON.stringify(seedless));

    const { url } = await startConsole(h.dir);
    const requested: string[] = [];
    const page = await openPage(browser, `${url}#/evals`);
    page.on('request', (request) => requested.push(request.url()));
    await page.reload();
    await page.locator('[data-testid="eval-row"]').nth(1).waitFor();
    const row = page.locator(`[data-testid="eval-row"][data-eval="${id}"]`);
    expect({
      runs: await row.getByTestId('eval-runs').textContent(),
      pass: await row.getByTestId('eval-pass').textContent(),
    }).toEqual({
      runs: '2',
      pass: report.configurations.map((c) => `${c.configuration} ${pct(c.passRate)}`).join(', '),
    });
    expect(
      await page
        .locator('[data-testid="eval-row"][data-eval="hand-edited"] [data-testid="eval-error"]')
        .textContent(),
    ).toBe(
      'hand-edited/report.json is not an eval report: seed: Invalid input: expected number, received undefined — it was not written by this version of keel eval; run the eval again, or delete the directory',
    );
    await shoot(page, 'evals', '[data-testid="eval-row"]');

    await row.getByRole('link', { name: 'cart-fix' }).click();
    await page.locator('[data-testid="eval"] svg.chart').first().waitFor();
    // Every chart drawn for this window's width, and laid out: the first chart can be in the page
    // before its bars have their size (a full run read the pass-rate bars at width 0 once).
    await page.waitForFunction(chartsDrawnForViewport);
    await page.waitForFunction(chartBarsLaidOut);
    expect(await page.locator('h1').textContent()).toBe('Eval cart-fix');
    expect(
      await page
        .locator('[data-testid="chart"]')
        .evaluateAll((figures) =>
          figures.map((f) => [f.getAttribute('data-chart'), f.querySelector('figcaption')?.textContent]),
        ),
    ).toEqual([
      ['pass-rate', 'Pass rate'],
      ['latency', 'Task latency'],
      ['cost', 'Mean cost per run'],
      ['interrupts', 'Human interrupts (approvals asked, all runs)'],
      ['steps', 'Mean steps per run'],
      ['rounds', 'Rounds per run'],
      ['runs', 'Every run (green: passed)'],
    ]);
    const bars = (chart: string) =>
      page
        .locator(`svg#${chart} rect.bar`)
        .evaluateAll((rects) =>
          rects.map((r) => [
            r.getAttribute('data-group'),
            r.getAttribute('data-series'),
            Number(r.getAttribute('data-value')),
            r.getBoundingClientRect().width > 0,
          ]),
        );
    const per = (series: string[], pick: (c: EvalReport['configurations'][number]) => number[]) =>
      report.configurations.flatMap((c) => pick(c).map((v, i) => [c.configuration, series[i], v, true]));
    expect({
      passRate: await bars('pass-rate'),
      latency: await bars('latency'),
      cost: await bars('cost'),
      interrupts: await bars('interrupts'),
      steps: await bars('steps'),
      rounds: await bars('rounds'),
    }).toEqual({
      passRate: per(['pass rate'], (c) => [c.passRate]),
      latency: per(['p50', 'p95'], (c) => [c.p50LatencyMs, c.p95LatencyMs]),
      cost: per(['cost'], (c) => [c.meanCostUsd]),
      interrupts: per(['approvals asked'], (c) => [c.approvalsAsked]),
      steps: per(['steps'], (c) => [c.meanSteps]),
      rounds: per(['review', 'rework'], (c) => [c.meanReviewRounds, c.meanReworkRounds]),
    });
    expect(
      await page
        .locator('svg#runs rect.run')
        .evaluateAll((rects) => rects.map((r) => r.getAttribute('class'))),
    ).toEqual(report.runs.map((r) => (r.passed ? 'run pass' : 'run fail')));
    expect(await page.locator('[data-testid="eval-run"]').count()).toBe(report.runs.length);
    await shoot(page, 'eval', '[data-testid="eval"] svg.chart');

    // Nothing came from anywhere but the console: no CDN, the page works offline.
    expect(requested.filter((r) => !r.startsWith(url))).toEqual([]);
    // The charts are drawn in the page by the module that draws report.html's.
    expect(requested.filter((r) => r.includes('/charts/'))).toEqual([`${url}app/src/charts/svg.js`]);

    // The API names what is wrong with a bad address, and the way out.
    const answer = async (address: string) => {
      const res = await fetch(new URL(address, url), {
        headers: { cookie: `keel_console_token=${testConsoleToken}` },
      });
      return [res.status, await res.json()];
    };
    expect(await answer('/api/evals/no-such-eval')).toEqual([
      404,
      {
        error: {
          code: 'NOT_FOUND',
          message: "no eval 'no-such-eval'",
          hint: `keel eval SUITE, run beside this config, writes its report under ${evals}`,
        },
      },
    ]);
    expect(await answer('/api/evals/..%2Fstate')).toEqual([
      400,
      {
        error: {
          code: 'INVALID_ARGUMENT',
          message: "'..%2Fstate' is not an eval's name",
          hint: "an eval is named by its directory under the state dir's evals/ (letters, digits, . _ -)",
        },
      },
    ]);
  });
});
