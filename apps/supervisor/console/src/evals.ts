import { evalCharts } from '../../src/charts/svg.js';
import { get } from './api.js';
import { chart, chartWidth, h, int, ms, status, time, usd } from './dom.js';
import type { EvalEntry, EvalReport } from './types.js';

const pct = (v: number) => `${(v * 100).toFixed(0)}%`;

const cell = (label: string, value: string, numeric = false, testid?: string) =>
  h('td', { 'data-label': label, class: numeric ? 'num' : null, 'data-testid': testid }, value);

/** The evals `keel eval` wrote under this config's state dir, newest first. */
export async function evalsPage(): Promise<HTMLElement> {
  const entries = await get<EvalEntry[]>('/api/evals');
  return h(
    'section',
    { 'data-testid': 'evals' },
    h('h1', {}, 'Evals'),
    h(
      'p',
      { class: 'sub' },
      'Reports of keel eval SUITE run beside this config (kept under its state dir, in evals/).',
    ),
    entries.length === 0
      ? h('p', { class: 'empty' }, 'No eval reports yet: keel eval SUITE writes one.')
      : h(
          'table',
          { class: 'runs' },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              ...['Eval', 'Written', 'Seed', 'Runs', 'Pass rate per configuration'].map((t) =>
                h('th', {}, t),
              ),
            ),
          ),
          h(
            'tbody',
            {},
            ...entries.map((e) =>
              'error' in e
                ? h(
                    'tr',
                    { 'data-testid': 'eval-row', 'data-eval': e.id },
                    h('td', { 'data-label': 'Eval' }, e.id),
                    cell('Written', time(e.writtenAt)),
                    h(
                      'td',
                      { 'data-label': 'Error', colspan: 3, class: 'bad', 'data-testid': 'eval-error' },
                      `${e.error.message} — ${e.error.hint}`,
                    ),
                  )
                : h(
                    'tr',
                    { 'data-testid': 'eval-row', 'data-eval': e.id },
                    h(
                      'td',
                      { 'data-label': 'Eval' },
                      h('a', { href: `#/evals/${e.id}` }, e.suite),
                      h('div', { class: 'sub' }, e.id),
                    ),
                    cell('Written', time(e.writtenAt)),
                    cell('Seed', `${e.seed} × ${e.repeat}`, true),
                    cell('Runs', String(e.runs), true, 'eval-runs'),
                    cell(
                      'Pass rate',
                      e.configurations.map((c) => `${c.configuration} ${pct(c.passRate)}`).join(', '),
                      false,
                      'eval-pass',
                    ),
                  ),
            ),
          ),
        ),
  );
}

/** One eval report: its table, the same charts as its report.html, and every run. */
export async function evalPage(id: string): Promise<HTMLElement> {
  const report = await get<EvalReport>(`/api/evals/${encodeURIComponent(id)}`);
  const heads = [
    'Configuration',
    'Runs',
    'Pass rate',
    'p50',
    'p95',
    'Steps',
    'Tokens',
    'Cost',
    'Approvals asked',
    'Review rounds',
    'Rework rounds',
    'Limit stops',
  ];
  return h(
    'section',
    { 'data-testid': 'eval', 'data-eval': id },
    h('p', {}, h('a', { href: '#/evals' }, '← Evals')),
    h('h1', {}, `Eval ${report.suite}`),
    h(
      'p',
      { class: 'sub' },
      `${id} · seed ${report.seed} · every task under every configuration ${report.repeat} time(s), each on a fresh copy of its repository. Steps, tokens, cost and rounds are means per run; approvals asked is the total.`,
    ),
    h(
      'table',
      { class: 'runs' },
      h('thead', {}, h('tr', {}, ...heads.map((t) => h('th', {}, t)))),
      h(
        'tbody',
        {},
        ...report.configurations.map((c) =>
          h(
            'tr',
            { 'data-testid': 'configuration-row', 'data-configuration': c.configuration },
            ...[
              c.configuration,
              String(c.runs),
              `${pct(c.passRate)} (${c.passed})`,
              ms(c.p50LatencyMs),
              ms(c.p95LatencyMs),
              c.meanSteps.toFixed(1),
              int(Math.round(c.meanTokens)),
              usd(c.meanCostUsd),
              String(c.approvalsAsked),
              c.meanReviewRounds.toFixed(2),
              c.meanReworkRounds.toFixed(2),
              String(c.limitStops),
            ].map((v, i) => cell(heads[i]!, v, i > 0)),
          ),
        ),
      ),
    ),
    h('div', { class: 'charts' }, ...evalCharts(report, chartWidth()).map(chart)),
    h('h2', {}, `Runs (${report.runs.length})`),
    h(
      'table',
      { class: 'runs' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ...['Task', 'Configuration', '#', 'Status', 'Checks', 'Passed', 'Latency', 'Steps', 'Cost'].map(
            (t) => h('th', {}, t),
          ),
        ),
      ),
      h(
        'tbody',
        {},
        ...report.runs.map((r) =>
          h(
            'tr',
            { 'data-testid': 'eval-run', 'data-task': r.taskId },
            cell('Task', r.task),
            cell('Configuration', r.configuration),
            cell('#', String(r.repetition), true),
            h('td', { 'data-label': 'Status' }, status(r.status), r.limit ? ` ${r.limit}` : ''),
            cell(
              'Checks',
              Object.entries(r.checks)
                .map(([k, v]) => `${k} ${v ? 'ok' : 'FAILED'}`)
                .join(', ') || '—',
            ),
            cell('Passed', r.passed ? 'yes' : 'no'),
            cell('Latency', ms(r.latencyMs), true),
            cell('Steps', String(r.steps), true),
            cell('Cost', usd(r.costUsd), true),
          ),
        ),
      ),
    ),
  );
}
