import { get, listen, post } from './api.js';
import { approvalsPage } from './approvals.js';
import { evalPage, evalsPage } from './evals.js';
import { runPage } from './run.js';
import { runsPage } from './runs.js';
import { failed, followNotice, report, setupWho, who } from './shell.js';
import { statsPage } from './stats.js';
import type { ConsoleState } from './types.js';

const app = document.querySelector<HTMLElement>('#app')!;
/** Progress lines of tasks this console resumed, from the event stream. */
const progress = new Map<string, string[]>();

async function page(): Promise<HTMLElement> {
  const [route = '', queryText = ''] = location.hash.replace(/^#/, '').split('?');
  const query = new URLSearchParams(queryText);
  const run = /^\/runs\/([\w.-]+)$/.exec(route);
  if (run) return runPage(run[1]!, progress.get(run[1]!) ?? []);
  if (route === '/approvals') return approvalsPage(query);
  if (route === '/stats') return statsPage(query);
  const evaluation = /^\/evals\/([\w.-]+)$/.exec(route);
  if (evaluation) return evalPage(evaluation[1]!);
  if (route === '/evals') return evalsPage();
  return runsPage(query);
}

async function banner(): Promise<void> {
  const state = await get<ConsoleState>('/api/state');
  const el = document.querySelector<HTMLElement>('#stop')!;
  el.hidden = state.globalStop === null;
  el.querySelector('span')!.textContent =
    state.globalStop === null
      ? ''
      : `Global stop in force since ${state.globalStop.at} (by ${state.globalStop.by}): no task starts.`;
  document.querySelector<HTMLElement>('#kill-all')!.hidden = state.globalStop !== null;
}

let rendering: Promise<void> | undefined;
let again = false;

/** Renders the current page, keeping open sections and typed text across live updates. */
async function render(): Promise<void> {
  if (rendering !== undefined) {
    again = true;
    return rendering;
  }
  rendering = (async () => {
    do {
      again = false;
      try {
        const next = await page();
        // What the person opened, typed and focused is read after the page was fetched, right before
        // the swap: text typed while a live update was in flight is kept, not reset to the older value.
        const open = new Set(
          [...app.querySelectorAll<HTMLDetailsElement>('details[open]')].map((d) => d.dataset['key']),
        );
        const typed = new Map(
          [...app.querySelectorAll<HTMLInputElement>('input[data-keep]')].map((i) => [
            i.dataset['keep'],
            i.value,
          ]),
        );
        const focused = (document.activeElement as HTMLElement | null)?.dataset?.['keep'];
        for (const d of next.querySelectorAll<HTMLDetailsElement>('details[data-key]'))
          if (open.has(d.dataset['key'])) d.open = true;
        for (const i of next.querySelectorAll<HTMLInputElement>('input[data-keep]'))
          i.value = typed.get(i.dataset['keep']) ?? '';
        app.replaceChildren(next);
        if (focused !== undefined)
          next.querySelector<HTMLInputElement>(`[data-keep="${CSS.escape(focused)}"]`)?.focus();
        for (const link of document.querySelectorAll<HTMLAnchorElement>('nav a'))
          link.classList.toggle('current', location.hash.startsWith(link.getAttribute('href') ?? '#/runs'));
        await banner();
        // A failure here is the notice's, not the page's.
        await followNotice().catch(failed);
      } catch (error) {
        app.replaceChildren(
          Object.assign(document.createElement('p'), {
            className: 'bad',
            textContent: (error as Error).message,
          }),
        );
      }
    } while (again);
  })().finally(() => {
    rendering = undefined;
  });
  return rendering;
}

setupWho();
window.addEventListener('hashchange', () => void render());
// Charts are drawn at the width they are shown at: a new width (a phone turned) draws them again.
let drawnFor = window.innerWidth;
window.addEventListener('resize', () => {
  if (window.innerWidth === drawnFor || app.querySelector('[data-testid="chart"]') === null) return;
  drawnFor = window.innerWidth;
  void render();
});
document.querySelector('#kill-all')!.addEventListener('click', () => {
  void (async () => {
    try {
      if (!confirm('Kill every task that has not ended, and refuse new ones until the stop is lifted?'))
        return;
      const results = await post<unknown[]>('/api/kill-all', { by: who(true) });
      report(`global stop: ${results.length} task(s) killed`);
    } catch (error) {
      failed(error);
    }
  })();
});
document.querySelector('#resume-all')!.addEventListener('click', () => {
  void (async () => {
    try {
      await post('/api/resume-all', { by: who(true) });
      report('global stop lifted');
    } catch (error) {
      failed(error);
    }
  })();
});
listen({
  change: () => void render(),
  progress: ({ taskId, line }) => {
    const lines = progress.get(taskId) ?? [];
    lines.push(line);
    progress.set(taskId, lines.slice(-200));
    void render();
  },
});
void render();
