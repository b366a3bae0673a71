import { get } from './api.js';
import { h, ms, svg, usd } from './dom.js';
import type { TypeFigures } from './types.js';

/** A horizontal bar chart: one bar per task type, labelled with its value. */
function bars(
  title: string,
  rows: TypeFigures[],
  pick: (f: TypeFigures) => number,
  show: (v: number) => string,
) {
  const max = Math.max(...rows.map(pick), 1e-9);
  const rowHeight = 28;
  const chart = svg(
    'svg',
    { viewBox: `0 0 400 ${rows.length * rowHeight + 4}`, role: 'img', 'aria-label': title, class: 'chart' },
    ...rows.flatMap((f, i) => {
      const y = i * rowHeight + 2;
      const width = Math.max((pick(f) / max) * 220, 1);
      return [
        svg('text', { x: 0, y: y + 18, class: 'chart-label' }, f.type),
        svg('rect', { x: 110, y: y + 4, width, height: 18, rx: 3, class: 'chart-bar' }),
        svg('text', { x: 114 + width, y: y + 18, class: 'chart-value' }, show(pick(f))),
      ];
    }),
  );
  return h('figure', { class: 'card', 'data-testid': 'chart' }, h('figcaption', {}, title), chart);
}

/** Task metrics per type, over ended tasks, as charts and a table. */
export async function statsPage(): Promise<HTMLElement> {
  const figures = await get<TypeFigures[]>('/api/stats');
  if (figures.length === 0)
    return h('section', {}, h('h1', {}, 'Stats'), h('p', { class: 'empty' }, 'No tasks yet.'));
  const pct = (v: number) => `${(v * 100).toFixed(0)}%`;
  return h(
    'section',
    { 'data-testid': 'stats' },
    h('h1', {}, 'Stats'),
    h(
      'p',
      { class: 'sub' },
      'Per task type, over tasks that ended (running and waiting ones are counted by status only).',
    ),
    h(
      'div',
      { class: 'charts' },
      bars('Success rate', figures, (f) => f.successRate, pct),
      bars(
        'Mean steps',
        figures,
        (f) => f.meanSteps,
        (v) => v.toFixed(1),
      ),
      bars('p50 duration', figures, (f) => f.p50DurationMs, ms),
      bars('p95 duration', figures, (f) => f.p95DurationMs, ms),
      bars(
        'Mean tokens',
        figures,
        (f) => f.meanTokens,
        (v) => Math.round(v).toLocaleString('en-US'),
      ),
      bars('Mean cost', figures, (f) => f.meanCostUsd, usd),
    ),
    h(
      'table',
      { class: 'runs' },
      h(
        'thead',
        {},
        h('tr', {}, ...['Type', 'Tasks', 'Ended', 'Succeeded', 'By status'].map((t) => h('th', {}, t))),
      ),
      h(
        'tbody',
        {},
        ...figures.map((f) =>
          h(
            'tr',
            { 'data-testid': 'stats-row', 'data-type': f.type },
            h('td', { 'data-label': 'Type' }, f.type),
            h('td', { 'data-label': 'Tasks', class: 'num' }, String(f.tasks)),
            h('td', { 'data-label': 'Ended', class: 'num' }, String(f.ended)),
            h('td', { 'data-label': 'Succeeded', class: 'num' }, String(f.succeeded)),
            h(
              'td',
              { 'data-label': 'By status' },
              Object.entries(f.byStatus)
                .map(([s, n]) => `${s} ${n}`)
                .join(', '),
            ),
          ),
        ),
      ),
    ),
  );
}
