import type { ConfigurationFigures, EvalReport } from './report.js';

const escape = (text: string) =>
  text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');

const palette = ['#3b6ea5', '#d9822b', '#4c9a5b', '#a8485d', '#7a5fa8', '#2f8f8f'];

interface Series {
  label: string;
  value: (c: ConfigurationFigures) => number;
}

/** A horizontal bar chart, one group per configuration, one bar per series. */
function barChart(
  title: string,
  id: string,
  configurations: ConfigurationFigures[],
  series: Series[],
  format: (v: number) => string,
): string {
  const barHeight = 18;
  const gap = 6;
  const labelWidth = 160;
  const width = 640;
  const plot = width - labelWidth - 90;
  const groupHeight = series.length * (barHeight + 2) + gap;
  const height = configurations.length * groupHeight + 30;
  const max = Math.max(1e-12, ...configurations.flatMap((c) => series.map((s) => s.value(c))));
  const bars: string[] = [];
  for (const [g, c] of configurations.entries()) {
    const top = 24 + g * groupHeight;
    bars.push(
      `<text x="${labelWidth - 8}" y="${top + (series.length * (barHeight + 2)) / 2 + 4}" text-anchor="end" class="label">${escape(c.configuration)}</text>`,
    );
    for (const [i, s] of series.entries()) {
      const value = s.value(c);
      const w = Math.max(1, (value / max) * plot);
      const y = top + i * (barHeight + 2);
      bars.push(
        `<rect class="bar" data-configuration="${escape(c.configuration)}" data-series="${escape(s.label)}" data-value="${value}" x="${labelWidth}" y="${y}" width="${w.toFixed(1)}" height="${barHeight}" fill="${palette[i % palette.length]}"><title>${escape(`${c.configuration} ${s.label}: ${format(value)}`)}</title></rect>`,
        `<text x="${(labelWidth + w + 6).toFixed(1)}" y="${y + barHeight - 5}" class="value">${escape(format(value))}</text>`,
      );
    }
  }
  const legend =
    series.length < 2
      ? ''
      : series
          .map(
            (s, i) =>
              `<rect x="${labelWidth + i * 110}" y="4" width="10" height="10" fill="${palette[i % palette.length]}"/><text x="${labelWidth + i * 110 + 14}" y="13" class="legend">${escape(s.label)}</text>`,
          )
          .join('');
  return `<figure><figcaption>${escape(title)}</figcaption><svg class="chart" id="${id}" role="img" aria-label="${escape(title)}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" xmlns="http://www.w3.org/2000/svg">${legend}${bars.join('')}</svg></figure>`;
}

/** Each run as a square: green passed, red failed; its title says why. */
function runStrip(report: EvalReport): string {
  const size = 16;
  const rows = report.configurations.map((c, r) => {
    const mine = report.runs.filter((run) => run.configuration === c.configuration);
    return [
      `<text x="152" y="${r * 24 + 32}" text-anchor="end" class="label">${escape(c.configuration)}</text>`,
      ...mine.map(
        (run, i) =>
          `<rect class="run ${run.passed ? 'pass' : 'fail'}" x="${160 + i * (size + 3)}" y="${r * 24 + 20}" width="${size}" height="${size}"><title>${escape(`${run.task} #${run.repetition}: ${run.status}${run.limit ? ` (${run.limit})` : ''}; checks ${JSON.stringify(run.checks)}`)}</title></rect>`,
      ),
    ].join('');
  });
  const most = Math.max(1, ...report.configurations.map((c) => c.runs));
  const width = 170 + most * (size + 3);
  const height = report.configurations.length * 24 + 30;
  return `<figure><figcaption>Every run (green: passed)</figcaption><svg class="chart" id="runs" role="img" aria-label="every run" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" xmlns="http://www.w3.org/2000/svg">${rows.join('')}</svg></figure>`;
}

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
  const charts = [
    barChart('Pass rate', 'pass-rate', c, [{ label: 'pass rate', value: (f) => f.passRate }], pct),
    barChart(
      'Task latency',
      'latency',
      c,
      [
        { label: 'p50', value: (f) => f.p50LatencyMs },
        { label: 'p95', value: (f) => f.p95LatencyMs },
      ],
      ms,
    ),
    barChart(
      'Mean cost per run',
      'cost',
      c,
      [{ label: 'cost', value: (f) => f.meanCostUsd }],
      (v) => `$${v.toFixed(4)}`,
    ),
    barChart('Mean steps per run', 'steps', c, [{ label: 'steps', value: (f) => f.meanSteps }], (v) =>
      v.toFixed(1),
    ),
    barChart(
      'Rounds per run',
      'rounds',
      c,
      [
        { label: 'review', value: (f) => f.meanReviewRounds },
        { label: 'rework', value: (f) => f.meanReworkRounds },
      ],
      (v) => v.toFixed(2),
    ),
    runStrip(report),
  ];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>keel eval ${escape(report.suite)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2rem;color:#1d2430;max-width:60rem}
h1{font-size:1.4rem}table{border-collapse:collapse;margin:1rem 0}th,td{border-bottom:1px solid #d6dbe3;padding:.3rem .6rem;text-align:right}
th:first-child,td:first-child{text-align:left}figure{margin:1.5rem 0}figcaption{font-weight:600;margin-bottom:.3rem}
.label,.value,.legend{font-size:12px;fill:#1d2430}.pass{fill:#4c9a5b}.fail{fill:#c0392b}
</style></head><body>
<h1>keel eval: ${escape(report.suite)}</h1>
<p>Seed ${report.seed}; every task under every configuration ${report.repeat} time(s), each on a fresh copy of its repository. Steps, tokens, cost and rounds are means per run.</p>
${table}
${charts.join('\n')}
</body></html>
`;
}
