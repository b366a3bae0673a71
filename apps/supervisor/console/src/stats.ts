import { get } from './api.js';
import { barChart } from '../../src/charts/svg.js';
import { chart, h, ms, usd } from './dom.js';
import type { TypeFigures } from './types.js';

/** One figure per task type, drawn by the chart module the eval report uses too. */
function bars(
  id: string,
  title: string,
  rows: TypeFigures[],
  pick: (f: TypeFigures) => number,
  format: (v: number) => string,
) {
  return chart(
    barChart({
      id,
      title,
      series: [title],
      groups: rows.map((f) => ({ label: f.type, values: [pick(f)] })),
      format,
    }),
  );
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
      bars('success-rate', 'Success rate', figures, (f) => f.successRate, pct),
      bars(
        'steps',
        'Mean steps',
        figures,
        (f) => f.meanSteps,
        (v) => v.toFixed(1),
      ),
      bars('p50', 'p50 duration', figures, (f) => f.p50DurationMs, ms),
      bars('p95', 'p95 duration', figures, (f) => f.p95DurationMs, ms),
      bars(
        'tokens',
        'Mean tokens',
        figures,
        (f) => f.meanTokens,
        (v) => Math.round(v).toLocaleString('en-US'),
      ),
      bars('cost', 'Mean cost', figures, (f) => f.meanCostUsd, usd),
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
