import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { expect, onTestFinished } from 'vitest';
import { startKeel, until, type KeelProcess } from './processes.js';
import { chartsDrawnForViewport, layoutProblemsInPage } from './layoutProblems.mjs';

/** Debian's chromium, driven by playwright-core; never a downloaded browser. */
export const chromiumPath = '/usr/bin/chromium';
export const haveChromium = existsSync(chromiumPath);
// CI installs Debian's chromium (.ci/run): there a missing browser is a failure, never a skip.
if (!haveChromium && process.env['CI'] === 'true')
  throw new Error(`${chromiumPath} is missing: .ci/run installs it with apt-get install -y chromium`);
if (!haveChromium)
  console.warn(`console browser tests skipped: no ${chromiumPath} (apt-get install -y chromium)`);

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

/** Screenshots of every page at both widths, kept for a person to look at (gitignored). */
const artifacts = new URL('../test-artifacts/console/', import.meta.url).pathname;
export const widths = {
  laptop: { width: 1280, height: 800 },
  phone: { width: 390, height: 844 },
} as const;

/** A page at a laptop's width; closed when the test ends, which fails if the page threw. */
/**
 * The login token the tests start `keel console` with (a person gets one made at start, in the
 * printed URL); pages opened by `openPage` carry it as the cookie the first visit would set.
 */
export const testConsoleToken = 'the-console-token-of-the-tests';

export async function openPage(browser: Browser, url: string): Promise<Page> {
  const page = await browser.newPage({ viewport: widths.laptop });
  await page
    .context()
    .addCookies([{ name: 'keel_console_token', value: testConsoleToken, url: new URL(url).origin }]);
  onTestFinished(() => page.close());
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  onTestFinished(() => expect(errors).toEqual([]));
  await page.goto(url);
  return page;
}

/**
 * What a person would find wrong with the page as laid out now, one line each: a word broken
 * across lines, text smaller than 11 px (SVG text at the size it is drawn), a chart label that
 * overlaps another or sticks out of its chart. Only what is visible counts.
 */
export function layoutProblems(page: Page): Promise<string[]> {
  return page.evaluate(layoutProblemsInPage);
}

/**
 * A screenshot of the page at a laptop's and a phone's width, kept for a person to look at; at
 * each, nothing may stick out sideways (the page is usable without scrolling across) and the page
 * must have none of the `layoutProblems`.
 */
export async function shoot(page: Page, name: string, ready: string): Promise<void> {
  mkdirSync(artifacts, { recursive: true });
  for (const [label, size] of Object.entries(widths)) {
    await page.setViewportSize(size);
    await page.locator(ready).first().waitFor();
    // Charts are drawn again for a new width: wait until each says it was drawn for this one.
    await page.waitForFunction(chartsDrawnForViewport);
    const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
    expect({ page: name, width: label, overflow, problems: await layoutProblems(page) }).toEqual({
      page: name,
      width: label,
      overflow: 0,
      problems: [],
    });
    await page.screenshot({ path: path.join(artifacts, `${name}-${label}.png`), fullPage: true });
  }
  await page.setViewportSize(widths.laptop);
}

export interface ConsoleProcess {
  url: string;
  proc: KeelProcess;
}

/** `keel console --port 0 [ARGS]` in a directory with a config; its URL once it listens, stopped when the test ends. */
export async function startConsole(
  cwd: string,
  args: string[] = [],
  env: NodeJS.ProcessEnv = {},
): Promise<ConsoleProcess> {
  const proc = startKeel(['console', '--port', '0', ...args], cwd, {
    KEEL_CONSOLE_TOKEN: testConsoleToken,
    ...env,
  });
  onTestFinished(() => stopConsole(proc));
  const url = await until(
    'the console to listen',
    () => {
      if (proc.child.exitCode !== null) throw new Error(`keel console exited:\n${proc.stderr()}`);
      return /keel console on (\S+)/.exec(proc.stdout())?.[1];
    },
    30_000,
  );
  return { url, proc };
}

/** Ctrl-C, as a person stops it; waits for the exit. */
export async function stopConsole(proc: KeelProcess): Promise<void> {
  if (proc.child.exitCode === null && proc.child.signalCode === null) process.kill(proc.pid, 'SIGINT');
  await proc.exited;
}
