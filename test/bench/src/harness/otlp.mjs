// A minimal OTLP/HTTP JSON trace receiver on 127.0.0.1: the Keel servers already export a
// `tools/call <tool>` span per call when OTEL_* asks them to, and those spans are their own time,
// measured at their side, with no change to their code.
import { createServer } from 'node:http';

const attribute = (span, key) => {
  const value = span.attributes?.find((a) => a.key === key)?.value;
  return value?.stringValue ?? value?.intValue ?? value?.boolValue ?? value?.doubleValue;
};

/** Epoch milliseconds (fractional) from an OTLP nanosecond string. */
const ms = (nanos) => Number(BigInt(nanos) / 1000n) / 1000;

export async function startOtlpReceiver() {
  /** Spans by the first path segment of the endpoint they were sent to (one per contender). */
  const spans = new Map();
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const channel = new URL(req.url ?? '/', 'http://127.0.0.1').pathname.split('/')[1] ?? '';
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        const list = spans.get(channel) ?? [];
        spans.set(channel, list);
        for (const rs of body.resourceSpans ?? []) {
          const service =
            rs.resource?.attributes?.find((a) => a.key === 'service.name')?.value?.stringValue ?? 'unknown';
          for (const scope of rs.scopeSpans ?? [])
            for (const span of scope.spans ?? [])
              list.push({
                service,
                name: span.name,
                tool: attribute(span, 'gen_ai.tool.name'),
                error: attribute(span, 'error.type'),
                startMs: ms(span.startTimeUnixNano),
                endMs: ms(span.endTimeUnixNano),
              });
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      } catch (error) {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: String(error) }));
      }
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    /** The OTEL_* environment that makes a Keel server export its spans to `channel`. */
    env: (channel) => ({
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${base}/${channel}/v1/traces`,
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_BSP_SCHEDULE_DELAY: '500',
    }),
    /** The tool-call spans a channel received whose start lies in [fromMs, toMs] (epoch ms), by start. */
    toolSpans(channel, fromMs, toMs) {
      return (spans.get(channel) ?? [])
        .filter((s) => s.name.startsWith('tools/call ') && s.startMs >= fromMs && s.startMs <= toMs)
        .sort((a, b) => a.startMs - b.startMs);
    },
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
