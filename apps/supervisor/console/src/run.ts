import { get, post } from './api.js';
import { h, int, json, ms, status, time, usd, type Child } from './dom.js';
import type { Bounded, ModelCallFull, RunDetail, TraceSpan } from './types.js';
import { callLabel } from '../../src/observe/labels.js';
import { timeline, type Wait } from '../../src/observe/timeline.js';
import { endedStatuses, failed, report, who } from './shell.js';

function bounded(value: Bounded | null): Child {
  if (value === null) return h('p', { class: 'sub' }, 'purged past retention');
  return [
    json(value.text),
    value.truncated
      ? h('p', { class: 'sub' }, `cut: shown ${int(value.text.length)} of ${int(value.bytes)} bytes`)
      : null,
  ];
}

/** All the waits for a person in the tree (the timeline draws them short). */
function waitsIn(span: TraceSpan): Wait[] {
  return [
    ...(span.kind === 'wait' ? [{ startMs: span.startMs, endMs: span.startMs + span.durationMs }] : []),
    ...span.children.flatMap(waitsIn),
  ];
}

function waterfall(root: TraceSpan): HTMLElement {
  const place = timeline(root.durationMs, waitsIn(root));
  const rows: HTMLElement[] = [];
  const walk = (span: TraceSpan, depth: number) => {
    const left = place(span.startMs) * 100;
    const width = Math.max((place(span.startMs + span.durationMs) - place(span.startMs)) * 100, 0.4);
    const a = span.attributes;
    const note =
      span.kind === 'chat'
        ? `${int(Number(a['inputTokens']))}+${int(Number(a['outputTokens']))} tok${a['asked'] ? ` → ${String(a['asked'])}` : ''}`
        : span.kind === 'agent'
          ? String(a['contract'] ?? a['stop'] ?? '')
          : span.kind === 'tool'
            ? `${callLabel(Number(a['step']), Number(a['callIndex']))} · ${int(Number(a['resultBytes']))} B${a['irreversible'] ? ', irreversible' : ''}`
            : span.kind === 'wait'
              ? `${String(a['approval'])}${a['tool'] ? ` (${String(a['tool'])})` : ''}: ${span.outcome === 'ok' ? `${String(a['decision'])}${a['by'] ? ` by ${String(a['by'])}` : ''}` : 'waiting for a person'}`
              : '';
    rows.push(
      h(
        'div',
        {
          class: `span span-${span.kind}${span.outcome === 'ok' ? '' : ' span-bad'}`,
          'data-testid': 'span',
          'data-kind': span.kind,
          'data-name': span.name,
        },
        h(
          'div',
          { class: 'span-label', style: `padding-left:${depth * 0.8}rem` },
          h('span', { class: 'span-name' }, span.name),
          h(
            'span',
            { class: 'sub' },
            // A stopped agent's message says how it stopped ('waiting for approval …'): once is enough.
            ` ${ms(span.durationMs)}${span.outcome === 'ok' || span.kind === 'wait' || (span.kind === 'agent' && a['stop'] !== undefined) ? '' : ` · ${span.outcome}`} ${note}`,
          ),
        ),
        h(
          'div',
          { class: 'span-track' },
          h('div', {
            class: 'span-bar',
            style: `left:${Math.min(left, 99.6)}%;width:${Math.min(width, 100 - Math.min(left, 99.6))}%`,
          }),
        ),
      ),
    );
    for (const child of span.children) walk(child, depth + 1);
  };
  walk(root, 0);
  return h('div', { class: 'waterfall', 'data-testid': 'waterfall' }, ...rows);
}

function eventSummary(data: unknown): string {
  if (data === null || typeof data !== 'object') return String(data);
  const d = data as Record<string, unknown>;
  const pick = [
    'agent',
    'invocation',
    'contract',
    'tool',
    'approval',
    'by',
    'reason',
    'status',
    'action',
    'step',
  ];
  const parts = pick
    .filter((k) => d[k] !== undefined && d[k] !== null)
    .map((k) => `${k}=${JSON.stringify(d[k])}`);
  const outcome = d['outcome'] as { message?: string } | undefined;
  if (outcome?.message) parts.push(outcome.message);
  return parts.join('  ');
}

/** One task: figures, kill switch, waterfall, limits, contracts, model and tool calls, the event log. */
export async function runPage(id: string, progress: string[]): Promise<HTMLElement> {
  const d = await get<RunDetail>(`/api/runs/${encodeURIComponent(id)}`);
  const r = d.row;
  const lines = d.resuming ?? progress;
  const kill = async () => {
    try {
      const result = await post<{ result: string }>(`/api/runs/${encodeURIComponent(id)}/kill`, {
        by: who(true),
      });
      report(`kill ${id}: ${result.result}`);
    } catch (error) {
      failed(error);
    }
  };
  return h(
    'section',
    { 'data-testid': 'run', 'data-task': id },
    h('p', {}, h('a', { href: '#/runs' }, '← Runs')),
    h('h1', {}, r.title, ' ', status(r.status)),
    h('p', { class: 'sub' }, `${r.id} · ${r.type} · ${r.mode} · started ${time(r.createdAt)}`),
    r.outcome === null ? null : h('p', { class: 'outcome-line', 'data-testid': 'outcome' }, r.outcome),
    endedStatuses.has(r.status)
      ? null
      : h('button', { class: 'danger', 'data-testid': 'kill', onclick: () => void kill() }, 'Kill this task'),
    h(
      'dl',
      { class: 'figures' },
      ...(
        [
          ['Steps', String(r.steps)],
          ['Tokens', `${int(r.tokens.input)} + ${int(r.tokens.output)}`],
          ['Cost', usd(r.costUsd)],
          ['Tool calls', String(r.toolCalls)],
          ['Duration', ms(r.durationMs)],
          ['Agent', r.agent ?? '—'],
        ] as const
      ).map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v))),
    ),
    lines.length === 0
      ? null
      : h(
          'div',
          { class: 'progress', 'data-testid': 'progress' },
          h('h2', {}, 'Progress (resumed by this console)'),
          json(lines.join('\n')),
        ),
    h('h2', {}, 'Trace'),
    waterfall(d.trace),
    h('h2', {}, 'Limits'),
    h(
      'div',
      { class: 'limits' },
      ...d.limits.map((l) => {
        const share = l.cap === null || l.cap === 0 ? 0 : Math.min(1, l.used / l.cap);
        const show = (v: number) =>
          l.limit === 'costUsd' ? usd(v) : l.limit === 'wallClockMs' ? ms(v) : int(v);
        return h(
          'div',
          { class: 'limit', 'data-testid': 'limit', 'data-limit': l.limit },
          h('span', {}, l.limit),
          h('meter', { min: 0, max: 1, value: share, high: 0.8 }),
          h('span', { class: 'num' }, `${show(l.used)} / ${l.cap === null ? '—' : show(l.cap)}`),
        );
      }),
    ),
    d.approvals.length === 0
      ? null
      : [
          h('h2', {}, 'Approvals and escalations'),
          h(
            'ul',
            {},
            ...d.approvals.map((a) =>
              h(
                'li',
                {},
                h('a', { href: '#/approvals?all=1' }, a.id),
                ` ${a.status} — ${a.summary}`,
                a.decidedBy === null
                  ? ''
                  : ` (by ${a.decidedBy}${a.decisionReason ? `: ${a.decisionReason}` : ''})`,
              ),
            ),
          ),
        ],
    h('h2', {}, `Contracts (${d.contracts.length})`),
    ...d.contracts.map((c, i) =>
      h(
        'details',
        { 'data-key': `contract-${i}` },
        h('summary', {}, `${c.agent} → ${c.contract} `, h('span', { class: 'sub' }, time(c.at))),
        json(c.value),
      ),
    ),
    h('h2', {}, `Model calls (${d.modelCalls.length})`),
    ...d.modelCalls.map((m) => {
      const body = h('div', {}, h('p', { class: 'sub' }, 'loading…'));
      const open = async () => {
        if (body.dataset['loaded'] === '1') return;
        body.dataset['loaded'] = '1';
        const full = await get<ModelCallFull>(`/api/runs/${encodeURIComponent(id)}/model-calls/${m.id}`);
        body.replaceChildren(
          h(
            'p',
            { class: 'sub' },
            `provider ${full.provider} · requested ${full.requestedModel} · answered ${full.responseModel ?? '—'} · system prompt sha256 ${full.systemSha256} · reserved ${int(full.reservedInputTokens)}+${int(full.reservedOutputTokens)} · started ${time(full.startedAt)}`,
          ),
          full.error === null ? '' : h('p', { class: 'bad' }, full.error),
          h('h3', {}, 'Reply'),
          h('div', {}, bounded(full.reply)),
          h('h3', {}, 'Raw response'),
          h('div', {}, bounded(full.raw)),
          h('h3', {}, 'Request (messages and tools as sent)'),
          h('div', {}, bounded(full.request)),
        );
      };
      return h(
        'details',
        { 'data-key': `model-${m.id}`, 'data-testid': 'model-call', ontoggle: () => void open() },
        h(
          'summary',
          {},
          `step ${m.step} · ${m.agent} · ${m.requestedModel} · ${int(m.inputTokens)}+${int(m.outputTokens)} tok · ${usd(m.costUsd)} · ${ms(m.latencyMs)}${m.error ? ' · error' : ''}`,
        ),
        m.purged ? h('p', { class: 'sub' }, 'body purged past retention') : body,
      );
    }),
    h('h2', {}, `Tool calls (${d.toolCalls.length})`),
    ...d.toolCalls.map((t) =>
      h(
        'details',
        { 'data-key': `tool-${t.id}`, 'data-testid': 'tool-call' },
        h(
          'summary',
          {},
          `${callLabel(t.step, t.callIndex)} · ${t.agent} · ${t.server ? `${t.server}.` : ''}${t.tool} · ${t.outcome}${t.errorCode ? ` ${t.errorCode}` : ''} · ${int(t.resultBytes)} B · ${ms(t.latencyMs)}${t.irreversible ? ' · irreversible' : ''}`,
        ),
        h('p', { class: 'sub' }, `idempotency key ${t.idempotencyKey ?? '—'}`),
        h('h3', {}, 'Arguments'),
        h('div', {}, bounded(t.arguments)),
        t.effect === null ? null : [h('h3', {}, 'Computed effect'), json(t.effect)],
        h('h3', {}, 'Result'),
        h('div', {}, bounded(t.result)),
      ),
    ),
    h('h2', {}, `Event log (${d.events.length})`),
    h(
      'table',
      { class: 'events', 'data-testid': 'events' },
      h(
        'thead',
        {},
        h('tr', {}, h('th', {}, '#'), h('th', {}, 'At'), h('th', {}, 'Event'), h('th', {}, 'Details')),
      ),
      h(
        'tbody',
        {},
        ...d.events.map((e) =>
          h(
            'tr',
            { 'data-testid': 'event', 'data-type': e.type },
            h('td', { 'data-label': '#' }, String(e.seq)),
            h('td', { 'data-label': 'At' }, time(e.at)),
            h('td', { 'data-label': 'Event' }, e.type),
            h('td', { 'data-label': 'Details', class: 'outcome' }, eventSummary(e.data)),
          ),
        ),
      ),
    ),
  );
}
