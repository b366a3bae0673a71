import type { TraceSpan } from './trace.js';

interface OtlpAttribute {
  key: string;
  value: { stringValue?: string; intValue?: string | number; boolValue?: boolean; doubleValue?: number };
}

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  status?: { code?: number; message?: string };
  attributes?: OtlpAttribute[];
}

interface FlatSpan extends OtlpSpan {
  service: string;
}

const attribute = (span: OtlpSpan, key: string) => {
  const value = span.attributes?.find((a) => a.key === key)?.value;
  return value?.stringValue ?? value?.intValue ?? value?.boolValue ?? value?.doubleValue;
};

/** Spans from OTLP/JSON trace exports: one `ExportTraceServiceRequest` per line (a collector's file exporter). */
export function readOtlpSpans(text: string): FlatSpan[] {
  const spans: FlatSpan[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const request = JSON.parse(line) as {
      resourceSpans?: Array<{
        resource?: { attributes?: OtlpAttribute[] };
        scopeSpans?: Array<{ spans?: OtlpSpan[] }>;
      }>;
    };
    for (const rs of request.resourceSpans ?? []) {
      const service =
        rs.resource?.attributes?.find((a) => a.key === 'service.name')?.value.stringValue ?? 'unknown';
      for (const scope of rs.scopeSpans ?? [])
        for (const span of scope.spans ?? []) spans.push({ ...span, service });
    }
  }
  return spans;
}

/**
 * Hangs the servers' own spans (and theirs, recursively) under the tool calls of a trace built
 * from the store: the supervisor's `execute_tool` spans of the task's OTLP trace (found by its
 * root's `keel.task.id`) are paired in order with the trace's tool calls that reached a server,
 * and every span a server made under one becomes its child. Returns how many spans were joined.
 */
export function joinServerSpans(
  root: TraceSpan,
  taskId: string,
  spans: readonly FlatSpan[],
  origin: number,
): number {
  const taskRoot = spans.find(
    (s) => s.name === 'invoke_agent orchestrator' && attribute(s, 'keel.task.id') === taskId,
  );
  if (taskRoot === undefined) return 0;
  const inTrace = spans.filter((s) => s.traceId === taskRoot.traceId);
  const children = new Map<string, FlatSpan[]>();
  for (const span of inTrace)
    if (span.parentSpanId)
      children.set(span.parentSpanId, [...(children.get(span.parentSpanId) ?? []), span]);
  const startNs = (s: OtlpSpan) => BigInt(s.startTimeUnixNano);
  const executes = inTrace
    .filter((s) => s.service === taskRoot.service && s.name.startsWith('execute_tool '))
    .sort((a, b) => (startNs(a) < startNs(b) ? -1 : startNs(a) > startNs(b) ? 1 : 0));
  const toolSpans: TraceSpan[] = [];
  const collect = (span: TraceSpan) => {
    if (span.kind === 'tool' && span.name.includes('.')) toolSpans.push(span);
    span.children.forEach(collect);
  };
  collect(root);
  toolSpans.sort((a, b) => a.startMs - b.startMs);
  const ms = (ns: string) => Number(BigInt(ns) / 1000n) / 1000;
  const convert = (span: FlatSpan): TraceSpan => ({
    kind: 'server',
    name: span.name,
    startMs: ms(span.startTimeUnixNano) - origin,
    durationMs: ms(span.endTimeUnixNano) - ms(span.startTimeUnixNano),
    outcome: span.status?.code === 2 ? (span.status.message ?? 'error') : 'ok',
    attributes: { service: span.service },
    children: (children.get(span.spanId) ?? []).map(convert).sort((a, b) => a.startMs - b.startMs),
  });
  let joined = 0;
  let next = 0;
  for (const tool of toolSpans) {
    const wanted = `execute_tool ${tool.name.slice(tool.name.indexOf('.') + 1)}`;
    while (next < executes.length && executes[next]!.name !== wanted) next++;
    const execute = executes[next++];
    if (execute === undefined) break;
    const mine = (children.get(execute.spanId) ?? [])
      .filter((s) => s.service !== taskRoot.service)
      .map(convert);
    const count = (s: TraceSpan): number => 1 + s.children.reduce((n, c) => n + count(c), 0);
    joined += mine.reduce((n, s) => n + count(s), 0);
    tool.children.push(...mine);
  }
  return joined;
}
