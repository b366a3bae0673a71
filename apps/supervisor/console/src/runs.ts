import { get } from './api.js';
import { h, int, ms, status, usd } from './dom.js';
import type { RunRow } from './types.js';

const statuses = [
  '',
  'starting',
  'running',
  'waiting',
  'escalated',
  'succeeded',
  'failed',
  'limit',
  'killed',
  'error',
];

/** Every task, newest first, with filters kept in the address (#/runs?status=…&type=…). */
export async function runsPage(query: URLSearchParams): Promise<HTMLElement> {
  const rows = await get<RunRow[]>(`/api/runs?${query.toString()}`);
  const filter = (key: string, value: string) => {
    const next = new URLSearchParams(query);
    if (value === '') next.delete(key);
    else next.set(key, value);
    location.hash = `#/runs?${next.toString()}`;
  };
  const cell = (label: string, ...content: Array<Node | string>) =>
    h('td', { 'data-label': label }, ...content);
  return h(
    'section',
    { 'data-testid': 'runs' },
    h('h1', {}, 'Runs'),
    h(
      'form',
      { class: 'filters', onsubmit: (e: Event) => e.preventDefault() },
      h(
        'label',
        {},
        'Status ',
        h(
          'select',
          {
            'data-testid': 'filter-status',
            onchange: (e: Event) => filter('status', (e.target as HTMLSelectElement).value),
          },
          ...statuses.map((s) =>
            h('option', { value: s, selected: (query.get('status') ?? '') === s }, s === '' ? 'any' : s),
          ),
        ),
      ),
      h(
        'label',
        {},
        'Type ',
        h('input', {
          'data-testid': 'filter-type',
          value: query.get('type') ?? '',
          placeholder: 'any',
          onchange: (e: Event) => filter('type', (e.target as HTMLInputElement).value.trim()),
        }),
      ),
    ),
    rows.length === 0
      ? h('p', { class: 'empty' }, 'No tasks match.')
      : h(
          'table',
          { class: 'runs' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ...['Task', 'Status', 'Type', 'Agent', 'Steps', 'Tokens', 'Cost', 'Duration', 'Outcome'].map(
                (t) => h('th', {}, t),
              ),
            ),
          ),
          h(
            'tbody',
            {},
            ...rows.map((r) =>
              h(
                'tr',
                { 'data-testid': 'run-row', 'data-task': r.id },
                cell('Task', h('a', { href: `#/runs/${r.id}` }, r.title), h('div', { class: 'sub' }, r.id)),
                cell('Status', status(r.status)),
                cell('Type', `${r.type} · ${r.mode}`),
                cell('Agent', r.agent ?? '—'),
                h('td', { 'data-label': 'Steps', 'data-testid': 'steps', class: 'num' }, String(r.steps)),
                h(
                  'td',
                  { 'data-label': 'Tokens', class: 'num' },
                  `${int(r.tokens.input)} + ${int(r.tokens.output)}`,
                ),
                h('td', { 'data-label': 'Cost', 'data-testid': 'cost', class: 'num' }, usd(r.costUsd)),
                h('td', { 'data-label': 'Duration', class: 'num' }, ms(r.durationMs)),
                h('td', { 'data-label': 'Outcome', class: 'outcome' }, r.outcome ?? ''),
              ),
            ),
          ),
        ),
  );
}
