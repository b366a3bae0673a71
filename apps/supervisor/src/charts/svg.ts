// Charts as plain data, drawn by the eval report page (as markup, in Node) and by the web console
// (as DOM nodes, in the browser): one drawing for both. No imports, so both builds can compile it.

/** An SVG element as data: `renderSvg` writes it as markup, the console builds DOM nodes from it. */
export interface SvgNode {
  tag: string;
  attrs: Record<string, string | number>;
  children: Array<SvgNode | string>;
}

/** A chart with its caption: the pages wrap it in a figure. */
export interface Chart {
  id: string;
  title: string;
  svg: SvgNode;
}

const node = (tag: string, attrs: SvgNode['attrs'], ...children: SvgNode['children']): SvgNode => ({
  tag,
  attrs,
  children,
});

/** Text made safe for markup: in an attribute value or between tags. */
export const escapeMarkup = (text: string) =>
  text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');

/** The node as SVG markup, every attribute value and text escaped. */
export function renderSvg(svg: SvgNode): string {
  const attrs = Object.entries(svg.attrs)
    .map(([key, value]) => ` ${key}="${escapeMarkup(String(value))}"`)
    .join('');
  const inner = svg.children
    .map((child) => (typeof child === 'string' ? escapeMarkup(child) : renderSvg(child)))
    .join('');
  return `<${svg.tag}${attrs}>${inner}</${svg.tag}>`;
}

export const palette = ['#3b6ea5', '#d9822b', '#4c9a5b', '#a8485d', '#7a5fa8', '#2f8f8f'];

export interface BarGroup {
  label: string;
  /** One value per series, in the order of `series`. */
  values: number[];
}

/** The width a chart is drawn at when its page does not say (the eval report's HTML page). */
export const defaultChartWidth = 520;
/** Narrower than this, a chart puts each label on its own line above its bars instead of beside them. */
const compactBelow = 420;

/**
 * A horizontal bar chart: one group per label (a configuration, a task type), one bar per series,
 * each bar labelled with its value. Bars carry their group, series and exact value as data-*
 * attributes, so a test reads the figure a bar stands for. `width` is the width it will be shown
 * at, so its text keeps the size the page gives it (a narrow page gets labels above the bars).
 */
export function barChart(options: {
  id: string;
  title: string;
  series: string[];
  groups: BarGroup[];
  format: (value: number) => string;
  width?: number;
}): Chart {
  const { series, groups, format } = options;
  const width = Math.round(options.width ?? defaultChartWidth);
  const compact = width < compactBelow;
  const barHeight = 18;
  const gap = 6;
  const labelWidth = compact ? 0 : 160;
  const labelRow = compact ? 18 : 0;
  const plot = width - labelWidth - 90;
  const groupHeight = labelRow + series.length * (barHeight + 2) + gap;
  // Room for the legend above the bars when there is one.
  const first = series.length < 2 ? 4 : 24;
  const height = first + groups.length * groupHeight + 4;
  const max = Math.max(1e-12, ...groups.flatMap((g) => g.values));
  const bars: SvgNode[] = [];
  for (const [g, group] of groups.entries()) {
    const top = first + g * groupHeight;
    bars.push(
      compact
        ? node('text', { x: 0, y: top + 13, class: 'chart-label' }, group.label)
        : node(
            'text',
            {
              x: labelWidth - 8,
              y: top + (series.length * (barHeight + 2)) / 2 + 4,
              'text-anchor': 'end',
              class: 'chart-label',
            },
            group.label,
          ),
    );
    for (const [i, label] of series.entries()) {
      const value = group.values[i] ?? 0;
      const w = Math.max(1, (value / max) * plot);
      const y = top + labelRow + i * (barHeight + 2);
      bars.push(
        node(
          'rect',
          {
            class: 'bar',
            'data-group': group.label,
            'data-series': label,
            'data-value': value,
            x: labelWidth,
            y,
            width: w.toFixed(1),
            height: barHeight,
            fill: palette[i % palette.length]!,
          },
          node('title', {}, `${group.label} ${label}: ${format(value)}`),
        ),
        node(
          'text',
          { x: (labelWidth + w + 6).toFixed(1), y: y + barHeight - 5, class: 'chart-value' },
          format(value),
        ),
      );
    }
  }
  const legend =
    series.length < 2
      ? []
      : series.flatMap((label, i) => [
          node('rect', {
            x: labelWidth + i * 110,
            y: 4,
            width: 10,
            height: 10,
            fill: palette[i % palette.length]!,
          }),
          node('text', { x: labelWidth + i * 110 + 14, y: 13, class: 'chart-legend' }, label),
        ]);
  return {
    id: options.id,
    title: options.title,
    svg: node(
      'svg',
      {
        class: 'chart',
        id: options.id,
        role: 'img',
        'aria-label': options.title,
        viewBox: `0 0 ${width} ${height}`,
        width,
        height,
        xmlns: 'http://www.w3.org/2000/svg',
      },
      ...legend,
      ...bars,
    ),
  };
}

/** What the eval charts read of a report (`EvalReport` in src/eval/report.ts has this shape). */
export interface EvalChartInput {
  configurations: Array<{
    configuration: string;
    runs: number;
    passRate: number;
    p50LatencyMs: number;
    p95LatencyMs: number;
    meanCostUsd: number;
    meanSteps: number;
    approvalsAsked: number;
    meanReviewRounds: number;
    meanReworkRounds: number;
  }>;
  runs: Array<{
    task: string;
    configuration: string;
    repetition: number;
    status: string;
    limit?: string | undefined;
    checks: Record<string, boolean | undefined>;
    passed: boolean;
  }>;
}

/**
 * Each run as a square, one row per configuration (wrapped to the width): green passed, red
 * failed; its title says why.
 */
function runStrip(report: EvalChartInput, width: number): Chart {
  const size = 16;
  const step = size + 3;
  const compact = width < compactBelow;
  const labelWidth = compact ? 0 : 160;
  const labelRow = compact ? 18 : 0;
  const perLine = Math.max(1, Math.floor((width - labelWidth - 4) / step));
  const nodes: SvgNode[] = [];
  let top = 12;
  for (const c of report.configurations) {
    const runs = report.runs.filter((run) => run.configuration === c.configuration);
    const lines = Math.max(1, Math.ceil(runs.length / perLine));
    nodes.push(
      compact
        ? node('text', { x: 0, y: top + 13, class: 'chart-label' }, c.configuration)
        : node(
            'text',
            { x: labelWidth - 8, y: top + 12, 'text-anchor': 'end', class: 'chart-label' },
            c.configuration,
          ),
      ...runs.map((run, i) =>
        node(
          'rect',
          {
            class: `run ${run.passed ? 'pass' : 'fail'}`,
            x: labelWidth + (i % perLine) * step,
            y: top + labelRow + Math.floor(i / perLine) * step,
            width: size,
            height: size,
          },
          node(
            'title',
            {},
            `${run.task} #${run.repetition}: ${run.status}${run.limit ? ` (${run.limit})` : ''}; checks ${JSON.stringify(run.checks)}`,
          ),
        ),
      ),
    );
    top += labelRow + lines * step + 6;
  }
  const height = top + 6;
  const title = 'Every run (green: passed)';
  return {
    id: 'runs',
    title,
    svg: node(
      'svg',
      {
        class: 'chart',
        id: 'runs',
        role: 'img',
        'aria-label': 'every run',
        viewBox: `0 0 ${width} ${height}`,
        width,
        height,
        xmlns: 'http://www.w3.org/2000/svg',
      },
      ...nodes,
    ),
  };
}

const pct = (v: number) => `${(v * 100).toFixed(0)}%`;
const ms = (v: number) => `${Math.round(v)} ms`;

/**
 * An eval report's charts, per configuration: pass rate, latency, cost, human interrupts, steps,
 * review and rework rounds, and every run.
 */
export function evalCharts(report: EvalChartInput, width: number = defaultChartWidth): Chart[] {
  const per = (pick: (c: EvalChartInput['configurations'][number]) => number[]) =>
    report.configurations.map((c) => ({ label: c.configuration, values: pick(c) }));
  return [
    barChart({
      width,
      id: 'pass-rate',
      title: 'Pass rate',
      series: ['pass rate'],
      groups: per((c) => [c.passRate]),
      format: pct,
    }),
    barChart({
      width,
      id: 'latency',
      title: 'Task latency',
      series: ['p50', 'p95'],
      groups: per((c) => [c.p50LatencyMs, c.p95LatencyMs]),
      format: ms,
    }),
    barChart({
      width,
      id: 'cost',
      title: 'Mean cost per run',
      series: ['cost'],
      groups: per((c) => [c.meanCostUsd]),
      format: (v) => `$${v.toFixed(4)}`,
    }),
    barChart({
      width,
      id: 'interrupts',
      title: 'Human interrupts (approvals asked, all runs)',
      series: ['approvals asked'],
      groups: per((c) => [c.approvalsAsked]),
      format: (v) => String(v),
    }),
    barChart({
      width,
      id: 'steps',
      title: 'Mean steps per run',
      series: ['steps'],
      groups: per((c) => [c.meanSteps]),
      format: (v) => v.toFixed(1),
    }),
    barChart({
      width,
      id: 'rounds',
      title: 'Rounds per run',
      series: ['review', 'rework'],
      groups: per((c) => [c.meanReviewRounds, c.meanReworkRounds]),
      format: (v) => v.toFixed(2),
    }),
    runStrip(report, width),
  ];
}
