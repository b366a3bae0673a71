import { barChart } from '../../src/charts/svg.js';
import { get } from './api.js';
import { chart, chartWidth, h, ms, usd } from './dom.js';
import type { StatsReport } from './types.js';

type TypeStats = StatsReport['types'][number];

const windows = [
  ['24h', 'last 24 hours'],
  ['7d', 'last 7 days'],
  ['30d', 'last 30 days'],
  ['all', 'all time'],
] as const;

/** One figure per task type, drawn by the chart module the eval report uses too. */
function bars(
  id: string,
  title: string,
  rows: TypeStats[],
  pick: (t: TypeStats) => number,
  format: (v: number) => string,
) {
  return chart(
    barChart({
      width: chartWidth(),
      id,
      title,
      series: [title],
      groups: rows.map((t) => ({ label: t.type, values: [pick(t)] })),
      format,
    }),
  );
}

const pct = (v: number) => `${(v * 100).toFixed(0)}%`;

/** `keel stats` in the page: per task type over ended tasks in a window, as charts and a table. */
export async function statsPage(query: URLSearchParams): Promise<HTMLElement> {
  const since = query.get('since') ?? '7d';
  const report = await get<StatsReport>(`/api/stats?since=${encodeURIComponent(since)}`);
  const types = report.types;
  const cell = (label: string, value: string, testid: string) =>
    h('td', { 'data-label': label, class: 'num', 'data-testid': testid }, value);
  return h(
    'section',
    { 'data-testid': 'stats' },
    h('h1', {}, 'Stats'),
    h(
      'form',
      { class: 'filters', onsubmit: (e: Event) => e.preventDefault() },
      h(
        'label',
        {},
        'Tasks created in the ',
        h(
          'select',
          {
            'data-testid': 'stats-window',
            onchange: (e: Event) => {
              location.hash = `#/stats?since=${(e.target as HTMLSelectElement).value}`;
            },
          },
          ...windows.map(([value, label]) => h('option', { value, selected: value === since }, label)),
        ),
      ),
    ),
    h(
      'p',
      { class: 'sub' },
      'The figures of keel stats: per task type, over tasks that ended (running and waiting ones count once they end).',
    ),
    types.length === 0
      ? h('p', { class: 'empty' }, 'No task ended in this window.')
      : [
          h(
            'div',
            { class: 'charts' },
            bars('success-rate', 'Success rate', types, (t) => t.successRate, pct),
            bars(
              'steps',
              'Mean steps',
              types,
              (t) => t.meanSteps,
              (v) => v.toFixed(1),
            ),
            bars('p50', 'p50 duration', types, (t) => t.p50LatencyMs, ms),
            bars('p95', 'p95 duration', types, (t) => t.p95LatencyMs, ms),
            bars(
              'tokens',
              'Mean tokens',
              types,
              (t) => t.meanInputTokens + t.meanOutputTokens,
              (v) => Math.round(v).toLocaleString('en-US'),
            ),
            bars('cost', 'Mean cost', types, (t) => t.meanCostUsd, usd),
            bars('cost-p95', 'p95 cost', types, (t) => t.p95CostUsd, usd),
            bars('cached', 'Cached input', types, (t) => t.cachedInputShare, pct),
          ),
          h(
            'table',
            { class: 'runs' },
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                ...[
                  'Type',
                  'Tasks',
                  'Success',
                  'Steps',
                  'p50',
                  'p95',
                  'Tokens',
                  'Cached',
                  'Cost',
                  'Cost p50',
                  'Cost p95',
                  'Cost CV',
                  'Steps vs before',
                ].map((t) => h('th', {}, t)),
              ),
            ),
            h(
              'tbody',
              {},
              ...types.map((t) =>
                h(
                  'tr',
                  { 'data-testid': 'stats-row', 'data-type': t.type },
                  h('td', { 'data-label': 'Type' }, t.type),
                  cell('Tasks', String(t.tasks), 'tasks'),
                  cell('Success', pct(t.successRate), 'success'),
                  cell('Steps', t.meanSteps.toFixed(1), 'steps'),
                  cell('p50', ms(t.p50LatencyMs), 'p50'),
                  cell('p95', ms(t.p95LatencyMs), 'p95'),
                  cell(
                    'Tokens',
                    Math.round(t.meanInputTokens + t.meanOutputTokens).toLocaleString('en-US'),
                    'tokens',
                  ),
                  cell('Cached', pct(t.cachedInputShare), 'cached'),
                  cell('Cost', usd(t.meanCostUsd), 'cost'),
                  cell('Cost p50', usd(t.p50CostUsd), 'cost-p50'),
                  cell('Cost p95', usd(t.p95CostUsd), 'cost-p95'),
                  cell('Cost CV', t.costCv === null ? '—' : t.costCv.toFixed(2), 'cost-cv'),
                  cell(
                    'Steps vs before',
                    t.previous === null
                      ? '—'
                      : `${t.previous.meanSteps.toFixed(1)} → ${t.meanSteps.toFixed(1)}${t.stepsJump ? ' (jump)' : ''}`,
                    'jump',
                  ),
                ),
              ),
            ),
          ),
        ],
  );
}
