import { escapeMarkup as escape, evalCharts, renderSvg } from '../charts/svg.js';
import type { EvalReport } from './report.js';

/** The report as one self-contained page: a table and inline SVG charts, no script, no network. */
export function renderEvalHtml(report: EvalReport): string {
  const c = report.configurations;
  const pct = (v: number) => `${(v * 100).toFixed(0)}%`;
  const ms = (v: number) => `${Math.round(v)} ms`;
  const table = `<table><thead><tr>${[
    'configuration',
    'runs',
    'pass rate',
    'p50',
    'p95',
    'steps',
    'tokens',
    'cost',
    'approvals asked',
    'review rounds',
    'rework rounds',
    'limit stops',
  ]
    .map((h) => `<th>${h}</th>`)
    .join('')}</tr></thead><tbody>${c
    .map(
      (f) =>
        `<tr><td>${escape(f.configuration)}</td><td>${f.runs}</td><td>${pct(f.passRate)}</td><td>${ms(f.p50LatencyMs)}</td><td>${ms(f.p95LatencyMs)}</td><td>${f.meanSteps.toFixed(1)}</td><td>${Math.round(f.meanTokens)}</td><td>$${f.meanCostUsd.toFixed(4)}</td><td>${f.approvalsAsked}</td><td>${f.meanReviewRounds.toFixed(2)}</td><td>${f.meanReworkRounds.toFixed(2)}</td><td>${f.limitStops}</td></tr>`,
    )
    .join('')}</tbody></table>`;
  const charts = evalCharts(report).map(
    (chart) => `<figure><figcaption>${escape(chart.title)}</figcaption>${renderSvg(chart.svg)}</figure>`,
  );
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>keel eval ${escape(report.suite)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2rem;color:#1d2430;max-width:60rem}
h1{font-size:1.4rem}table{border-collapse:collapse;margin:1rem 0}th,td{border-bottom:1px solid #d6dbe3;padding:.3rem .6rem;text-align:right}
th:first-child,td:first-child{text-align:left}figure{margin:1.5rem 0}figcaption{font-weight:600;margin-bottom:.3rem}
.chart-label,.chart-value,.chart-legend{font-size:12px;fill:#1d2430}.pass{fill:#4c9a5b}.fail{fill:#c0392b}
</style></head><body>
<h1>keel eval: ${escape(report.suite)}</h1>
<p>Seed ${report.seed}; every task under every configuration ${report.repeat} time(s), each on a fresh copy of its repository. Steps, tokens, cost and rounds are means per run.</p>
${table}
${charts.join('\n')}
</body></html>
`;
}
