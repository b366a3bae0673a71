// The harness bench's tables: printed, and written into test/bench/README.md between its markers.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { pairedRatio } from '../stats.mjs';

const readme = fileURLToPath(new URL('../../README.md', import.meta.url));
const begin = '<!-- harness:begin (pnpm bench harness rewrites this part) -->';
const end = '<!-- harness:end -->';

const ms = (value) => (value === undefined ? '—' : value >= 100 ? value.toFixed(0) : value.toFixed(1));
const kb = (bytes) => (bytes === undefined ? '—' : (bytes / 1024).toFixed(1));
const ratio = (a, b) => (a === undefined || b === undefined ? '—' : (a / b).toFixed(2));
/** Keel's per-round ratio to a peer: its median and 95% interval (see `pairedRatio`). */
export function pairedCell(keel, peer) {
  if (keel?.wallMs === undefined || peer?.wallMs === undefined) return '—';
  const { ratio, low, high } = pairedRatio(keel.wallMs, peer.wallMs);
  return `${ratio.toFixed(2)} (${low.toFixed(2)}–${high.toFixed(2)})`;
}
const cell = (entry, pick) => (entry === undefined ? '—' : entry.failed ? 'FAILED' : ms(pick(entry)));

/** A Markdown table, its columns padded as Prettier pads them, so the README stays formatted. */
export function markdown(header, lines) {
  const rows = [header, ...lines].map((row) => row.map(String));
  const widths = header.map((_, i) => Math.max(3, ...rows.map((row) => row[i].length)));
  const line = (row) => `| ${row.map((cell, i) => cell.padEnd(widths[i])).join(' | ')} |`;
  return [line(rows[0]), line(widths.map((w) => '-'.repeat(w))), ...rows.slice(1).map(line)].join('\n');
}

/** The tables in Markdown, from a report of `run()`. */
export function renderTable(report) {
  const ok = (entry) => (entry === undefined || entry.failed ? undefined : entry);
  const runs = markdown(
    [
      'run',
      'load (1 min, start–end)',
      'Keel ms',
      'Agents JS ms',
      'LangGraph ms',
      'Keel / Agents JS',
      'Keel / LangGraph',
      'per round: Keel / Agents JS (95%)',
      'per round: Keel / LangGraph (95%)',
    ],
    report.rows.map((row) => {
      const { keel, agents, langgraph } = row.contenders;
      return [
        `${row.mode}, ${row.latencyMs} ms per reply, ${row.rounds} rounds`,
        `${row.load[0]}–${row.load[1]}`,
        cell(keel, (e) => e.medianMs),
        cell(agents, (e) => e.medianMs),
        cell(langgraph, (e) => e.medianMs),
        ratio(ok(keel)?.medianMs, ok(agents)?.medianMs),
        ratio(ok(keel)?.medianMs, ok(langgraph)?.medianMs),
        pairedCell(ok(keel), ok(agents)),
        pairedCell(ok(keel), ok(langgraph)),
      ];
    }),
  );
  const warm = report.rows.filter((r) => r.mode === 'warm');
  const overhead = markdown(
    [
      'warm run',
      'Keel',
      'Agents JS',
      'LangGraph',
      'Keel, spans exported',
      'Keel, metered',
      'Keel / Agents JS',
      'Keel / LangGraph',
    ],
    warm.flatMap((row) => {
      const { keel, agents, langgraph } = row.contenders;
      const traced = row.contenders['keel-traced'];
      const metered = row.contenders['keel-metered'];
      return [
        ['overheadPerStepMs', 'overhead (wall)'],
        ['cpuPerStepMs', 'harness CPU'],
      ].map(([field, what]) => [
        `${row.latencyMs} ms per reply: ${what}`,
        cell(keel, (e) => e[field]),
        cell(agents, (e) => e[field]),
        cell(langgraph, (e) => e[field]),
        cell(traced, (e) => e[field]),
        cell(metered, (e) => e[field]),
        ratio(ok(keel)?.[field], ok(agents)?.[field]),
        ratio(ok(keel)?.[field], ok(langgraph)?.[field]),
      ]);
    }),
  );
  const breakdown = markdown(
    [
      'warm run',
      'model adapter',
      'record writes',
      'MCP client',
      'server pool',
      'rest of the engine',
      'span export (traced − untraced)',
    ],
    warm.flatMap((row) =>
      [
        ['wall', 'overheadPerStepMs'],
        ['cpu', 'cpuPerStepMs'],
      ].map(([kind, total]) => {
        const b = ok(row.contenders['keel-metered'])?.breakdownPerStepMs?.[kind];
        const traced = ok(row.contenders['keel-traced'])?.[total];
        const plain = ok(row.contenders.keel)?.[total];
        return [
          `${row.latencyMs} ms per reply: ${kind === 'wall' ? 'wall' : 'CPU'}`,
          ms(b?.modelAdapter),
          ms(b?.recordWrites),
          ms(b?.mcpClient),
          ms(b?.serverPool),
          ms(b?.engine),
          traced === undefined || plain === undefined ? '—' : ms(traced - plain),
        ];
      }),
    ),
  );
  const calls = warm
    .map((row) => {
      const keel = ok(row.contenders.keel);
      const peer = ok(row.contenders.agents) ?? ok(row.contenders.langgraph);
      return keel === undefined
        ? undefined
        : `${row.latencyMs} ms: Keel made ${keel.toolCallsPerTask} tool calls per task (${keel.extraCalls.join(', ') || 'none'} beyond the script), the peers ${peer?.toolCallsPerTask ?? '—'}; its last request to the model was ${kb(keel.requestBytes.last)} KB, a peer's ${kb(peer?.requestBytes.last)} KB.`;
    })
    .filter(Boolean)
    .join(' ');
  return [
    `Task wall time, median (ms); ratio < 1 means Keel is faster. Per round: the contenders run one task each, back to back, every round; the median of Keel's per-round ratios and its 95% bootstrap interval — an interval that contains 1 means this run cannot tell the two apart.\n\n${runs}`,
    `Warm, per step (ms, median over tasks; a step is a model call and the tool call it asks for, 13 per task). Overhead = step wall time minus the model server's and the tool servers' own time, measured at their side (where both worked at once, counted once); harness CPU = the contender process's own CPU time (user + system), which the machine's load does not inflate.\n\n${overhead}`,
    `Keel's per-step cost by part (ms), from the metered Keel: timed from outside around its store, model adapter, server connections and pool (wall parts exclude the servers' own time; the rest is the engine, and the meters themselves). Span export = the traced Keel's figure minus the plain one's. ${calls}\n\n${breakdown}`,
  ].join('\n\n');
}

/** Rewrites the README's generated part with this report. */
export function renderReadme(report) {
  const text = readFileSync(readme, 'utf8');
  const from = text.indexOf(begin);
  const to = text.indexOf(end);
  if (from < 0 || to < from) throw new Error(`test/bench/README.md lacks the markers ${begin} … ${end}`);
  const meta = `Measured ${report.at.slice(0, 10)} on Node ${report.node}, ${report.cpus} cores; peers: ${Object.entries(
    report.peers,
  )
    .filter(([name]) =>
      [
        '@openai/agents',
        'openai',
        'langchain',
        '@langchain/langgraph',
        '@langchain/openai',
        '@langchain/mcp-adapters',
      ].includes(name),
    )
    .map(([name, version]) => `${name} ${version}`)
    .join(', ')}; ${report.settings.warmup} warm-up tasks per warm contender.${
    report.failures.length > 0 ? `\n\n**Failed:** ${report.failures.join('; ')}` : ''
  }`;
  writeFileSync(
    readme,
    `${text.slice(0, from + begin.length)}\n\n${meta}\n\n${renderTable(report)}\n\n${text.slice(to)}`,
  );
}
