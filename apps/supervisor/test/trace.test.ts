import { execFile } from 'node:child_process';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it, onTestFinished } from 'vitest';
import { tempDir } from '@keel/testing';

const execFileAsync = promisify(execFile);
const bin = new URL('../dist/bin.js', import.meta.url).pathname;

interface OtlpSpan {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  attributes: Array<{ key: string; value: { stringValue?: string; intValue?: string | number } }>;
}

describe('OpenTelemetry', () => {
  it('one trace per task, across the supervisor and every server it calls', async () => {
    const received: Array<{ service: string; spans: OtlpSpan[] }> = [];
    const collector = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        if (req.url === '/v1/traces') {
          const parsed = JSON.parse(body) as {
            resourceSpans: Array<{
              resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> };
              scopeSpans: Array<{ spans: OtlpSpan[] }>;
            }>;
          };
          for (const rs of parsed.resourceSpans)
            received.push({
              service: rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '?',
              spans: rs.scopeSpans.flatMap((s) => s.spans),
            });
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => collector.close(() => resolve())));
    const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;

    const dir = path.join(await tempDir('keel-trace-'), 'demo');
    await execFileAsync(process.execPath, [bin, 'demo', '--dir', dir, '--quiet'], {
      env: {
        ...process.env,
        OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_BSP_SCHEDULE_DELAY: '50',
      },
    });
    // Servers flush when the supervisor closes their stdin; give the last batches a moment.
    const expectedServerSpans = 24;
    for (let i = 0; i < 100; i++) {
      const serverSpans = received.filter((r) => r.service !== 'keel').flatMap((r) => r.spans);
      if (serverSpans.filter((s) => s.name.startsWith('tools/call')).length >= expectedServerSpans) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const all = received.flatMap((r) => r.spans.map((s) => ({ ...s, service: r.service })));
    const mine = all.filter((s) => s.service === 'keel');
    const root = mine.find((s) => s.name === 'invoke_agent orchestrator');
    expect(root?.parentSpanId ?? '').toBe('');
    expect(new Set(all.map((s) => s.traceId))).toEqual(new Set([root!.traceId]));

    const count = (name: string) => mine.filter((s) => s.name === name).length;
    expect({
      planning: count('invoke_agent planning'),
      coding: count('invoke_agent coding'),
      review: count('invoke_agent review'),
      chat: count('chat playbook'),
      editFile: count('execute_tool edit_file'),
      runTests: count('execute_tool run_tests'),
      deploy: count('invoke_agent deploy'),
    }).toEqual({ planning: 1, coding: 3, review: 3, chat: 26, editFile: 3, runTests: 2, deploy: 2 });

    // Each server span hangs under the supervisor span that made the call: the execute_tool span
    // of the same tool for the agents' 18 calls, the coding agent for the 3 edit_file dry runs that
    // size a change before it runs, and the task's root for the starting-state reads.
    const byId = new Map(mine.map((s) => [s.spanId, s]));
    const serverCalls = all.filter((s) => s.service !== 'keel' && s.name.startsWith('tools/call '));
    const parents = serverCalls.map(
      (span) => `${span.name} <- ${byId.get(span.parentSpanId ?? '')?.name ?? 'none'}`,
    );
    const tally = (list: string[]) =>
      Object.fromEntries([...new Set(list)].sort().map((k) => [k, list.filter((x) => x === k).length]));
    expect(tally(parents)).toEqual({
      'tools/call edit_file <- execute_tool edit_file': 3,
      // Each mutating call's preview, asked by the effect stage under the agent's span, then the call;
      // git_add and git_commit declare that they change no file, so they are not previewed.
      'tools/call edit_file <- invoke_agent coding': 3,
      'tools/call git_add <- execute_tool git_add': 3,
      'tools/call git_commit <- execute_tool git_commit': 3,
      'tools/call git_status <- invoke_agent orchestrator': 1,
      'tools/call list_environments <- invoke_agent orchestrator': 1,
      'tools/call plan_deploy <- execute_tool plan_deploy': 2,
      'tools/call apply_deploy <- execute_tool apply_deploy': 1,
      // The orchestrator's check at the start that the tests can be found.
      'tools/call detect_projects <- execute_tool detect_projects': 1,
      'tools/call read_file <- execute_tool read_file': 5,
      'tools/call run_tests <- execute_tool run_tests': 2,
    });
    const chat = mine.find((s) => s.name === 'chat playbook')!;
    const attributes = Object.fromEntries(
      chat.attributes.map((a) => [a.key, a.value.stringValue ?? Number(a.value.intValue)]),
    );
    expect(attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'playbook',
      'gen_ai.request.model': 'playbook',
      'gen_ai.response.model': 'playbook',
      'gen_ai.usage.input_tokens': expect.any(Number),
    });
  });
});
