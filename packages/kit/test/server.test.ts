import { mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { context, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as z from 'zod';
import { defineTool } from '../src/defineTool.js';
import { jsonBytesBound } from '../src/pipeline/render.js';
import { fail, ok, type ToolError } from '../src/errors.js';
import { createPathJail, type PathJail } from '../src/jail.js';
import { createServer, ERROR_META_KEY } from '../src/server.js';

let dir: string;
let jail: PathJail;
beforeEach(async () => {
  dir = await realpath(await mkdtemp(path.join(tmpdir(), 'keel-server-')));
  jail = await createPathJail([dir]);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const errorOf = (result: { _meta?: Record<string, unknown> | undefined }) =>
  result._meta?.[ERROR_META_KEY] as ToolError | undefined;

function counterTool(counter: { runs: number }, holdMs = 0) {
  return defineTool({
    name: 'bump',
    title: 'Bump',
    description: 'Counts its runs.',
    input: z.object({ by: z.number().int().describe('Amount.') }),
    output: z.object({ run: z.number(), by: z.number() }),
    effect: 'write',
    handler: async (input) => {
      const run = ++counter.runs;
      if (holdMs > 0) await sleep(holdMs);
      return ok({ run, by: input.by });
    },
  });
}

describe('annotations follow the declared effect', () => {
  it.each([
    ['read', {}, { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false }],
    [
      'write',
      {},
      { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    ],
    [
      'write',
      { idempotent: true },
      { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    ],
    [
      'destructive',
      { openWorld: true },
      { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
    ],
  ] as const)('%s %j', (effect, extra, expected) => {
    const tool = defineTool({
      name: 't',
      title: 'T',
      description: 'd',
      input: z.object({}),
      output: z.object({}),
      effect,
      ...extra,
      handler: async () => ok({}),
    });
    const server = createServer({ name: 's', version: '1', tools: [tool], jail });
    const [listed] = server.listTools();
    expect(listed?.annotations).toEqual({ title: 'T', ...expected });
    expect(Object.keys((listed!.inputSchema as { properties: object }).properties)).toEqual(
      effect === 'read' ? [] : ['idempotencyKey'],
    );
  });
});

describe('idempotency in one process', () => {
  it('50 concurrent calls with one key run the handler once and all get the same result', async () => {
    const counter = { runs: 0 };
    const server = createServer({ name: 's', version: '1', tools: [counterTool(counter, 200)], jail });
    const calls = Array.from({ length: 50 }, () =>
      server.callTool('bump', { by: 2 }, { meta: { 'keel/idempotency-key': 'same' } }),
    );
    const results = await Promise.all(calls);
    expect(counter.runs).toBe(1);
    expect(new Set(results.map((r) => JSON.stringify(r.structuredContent)))).toEqual(
      new Set([JSON.stringify({ run: 1, by: 2 })]),
    );
    expect(
      results.filter(
        (r) => (r._meta?.['keel/idempotency'] as { replayed?: boolean } | undefined)?.replayed === true,
      ),
    ).toHaveLength(49);
    await server.close();
  });

  it('a concurrent duplicate that waits too long gets a retryable IN_PROGRESS', async () => {
    const counter = { runs: 0 };
    const server = createServer({
      name: 's',
      version: '1',
      tools: [counterTool(counter, 500)],
      jail,
      idempotency: { waitMs: 50 },
    });
    const first = server.callTool('bump', { by: 1, idempotencyKey: 'k' });
    await sleep(20);
    const second = await server.callTool('bump', { by: 1, idempotencyKey: 'k' });
    expect(errorOf(second)).toMatchObject({ code: 'IN_PROGRESS', retryable: true });
    expect((await first).structuredContent).toEqual({ run: 1, by: 1 });
    expect(counter.runs).toBe(1);
    await server.close();
  });

  it('the same key with other arguments is IDEMPOTENCY_KEY_REUSED', async () => {
    const counter = { runs: 0 };
    const server = createServer({ name: 's', version: '1', tools: [counterTool(counter)], jail });
    await server.callTool('bump', { by: 1, idempotencyKey: 'k' });
    const reused = await server.callTool('bump', { by: 2, idempotencyKey: 'k' });
    expect(reused.isError).toBe(true);
    expect(errorOf(reused)).toEqual({
      code: 'IDEMPOTENCY_KEY_REUSED',
      message: "idempotency key 'k' was already used for bump with different arguments",
      hint: 'Use a new key for a different call; reuse a key only to retry the exact same call.',
      retryable: false,
    });
    expect(counter.runs).toBe(1);
  });

  it('a key in _meta and a different one in the arguments is refused', async () => {
    const server = createServer({ name: 's', version: '1', tools: [counterTool({ runs: 0 })], jail });
    const result = await server.callTool(
      'bump',
      { by: 1, idempotencyKey: 'a' },
      { meta: { 'keel/idempotency-key': 'b' } },
    );
    expect(errorOf(result)?.code).toBe('INVALID_ARGUMENT');
  });

  it('without a key every call runs', async () => {
    const counter = { runs: 0 };
    const server = createServer({ name: 's', version: '1', tools: [counterTool(counter)], jail });
    await server.callTool('bump', { by: 1 });
    await server.callTool('bump', { by: 1 });
    expect(counter.runs).toBe(2);
  });

  it('a retryable failure releases the key so a retry runs again', async () => {
    let attempts = 0;
    const flaky = defineTool({
      name: 'flaky',
      title: 'Flaky',
      description: 'Fails once.',
      input: z.object({}),
      output: z.object({ attempt: z.number() }),
      effect: 'write',
      handler: async () =>
        ++attempts === 1 ? fail('UNAVAILABLE', 'remote down') : ok({ attempt: attempts }),
    });
    const server = createServer({ name: 's', version: '1', tools: [flaky], jail });
    expect(errorOf(await server.callTool('flaky', { idempotencyKey: 'k' }))?.code).toBe('UNAVAILABLE');
    expect((await server.callTool('flaky', { idempotencyKey: 'k' })).structuredContent).toEqual({
      attempt: 2,
    });
    expect((await server.callTool('flaky', { idempotencyKey: 'k' })).structuredContent).toEqual({
      attempt: 2,
    });
  });
});

describe('the pipeline', () => {
  it('answers a schema violation as a tool error the model can act on, an unknown tool as a protocol error', async () => {
    const counter = { runs: 0 };
    const server = createServer({ name: 's', version: '1', tools: [counterTool(counter)], jail });
    const invalid = await server.callTool('bump', { by: 'x', extra: 1 });
    expect(invalid.isError).toBe(true);
    expect(errorOf(invalid)).toEqual({
      code: 'INVALID_ARGUMENT',
      message: 'invalid arguments for bump: ✖ Invalid input: expected number, received string\n  → at by',
      hint: "Fix by to match the tool's input schema (tools/list shows it) and call again.",
      retryable: false,
      details: { issues: [{ path: ['by'], message: 'Invalid input: expected number, received string' }] },
    });
    expect(counter.runs).toBe(0);
    await expect(server.callTool('nope', {})).rejects.toMatchObject({
      code: -32602,
      message: 'Unknown tool: nope',
    });
  });

  it('times out a slow handler with a retryable TIMEOUT and aborts its signal', async () => {
    let aborted = false;
    const slow = defineTool({
      name: 'slow',
      title: 'Slow',
      description: 'Waits.',
      input: z.object({}),
      output: z.object({}),
      effect: 'read',
      timeoutMs: 100,
      handler: async (_input, ctx) => {
        await sleep(5000, undefined, { signal: ctx.signal }).catch(() => (aborted = true));
        return ok({});
      },
    });
    const server = createServer({ name: 's', version: '1', tools: [slow], jail });
    const result = await server.callTool('slow', {});
    expect(errorOf(result)).toMatchObject({
      code: 'TIMEOUT',
      message: 'slow did not finish within 100 ms',
      retryable: true,
    });
    await sleep(20);
    expect(aborted).toBe(true);
  });

  it('turns a result that breaks its output schema into INTERNAL, and an oversized one into RESOURCE_LIMIT', async () => {
    const liar = defineTool({
      name: 'liar',
      title: 'L',
      description: 'd',
      input: z.object({}),
      output: z.object({ n: z.number() }),
      effect: 'read',
      handler: async () => ok({ n: 'one' } as never),
    });
    const huge = defineTool({
      name: 'huge',
      title: 'H',
      description: 'd',
      input: z.object({}),
      output: z.object({ s: z.string() }),
      effect: 'read',
      handler: async () => ok({ s: 'x'.repeat(5000) }),
    });
    const server = createServer({
      name: 's',
      version: '1',
      tools: [liar, huge],
      jail,
      limits: { maxResultBytes: 4096 },
    });
    expect(errorOf(await server.callTool('liar', {}))?.code).toBe('INTERNAL');
    expect(errorOf(await server.callTool('huge', {}))).toMatchObject({
      code: 'RESOURCE_LIMIT',
      message: "huge produced 10080 bytes, over the server's hard cap of 4096",
    });
  });

  it('measures a result exactly when the quick bound cannot tell it is under the cap', async () => {
    // 1,000 two-byte characters: bounded at 6 bytes each, the text and its structured copy look like
    // 12,000 bytes, over 4,096; measured, the result is 4,080 and goes out. 1,100 are over: refused.
    const sized = defineTool({
      name: 'sized',
      title: 'S',
      description: 'd',
      input: z.object({ n: z.number() }),
      output: z.object({ s: z.string() }),
      effect: 'read',
      handler: async ({ n }) => ok({ s: 'é'.repeat(n) }),
    });
    const server = createServer({
      name: 's',
      version: '1',
      tools: [sized],
      jail,
      limits: { maxResultBytes: 4096 },
    });
    const fits = await server.callTool('sized', { n: 1000 });
    expect([fits.isError, Buffer.byteLength(JSON.stringify(fits))]).toEqual([undefined, 4080]);
    expect(errorOf(await server.callTool('sized', { n: 1100 }))).toMatchObject({
      code: 'RESOURCE_LIMIT',
      message: "sized produced 4480 bytes, over the server's hard cap of 4096",
    });
  });

  it('bounds the JSON size of a result from above without serialising it', () => {
    const values: unknown[] = [
      {
        content: [{ type: 'text', text: 'a "quoted"\n\u0001 é 😀' }],
        structuredContent: { n: -1.5e-300, ok: true },
      },
      [null, undefined, 1, 'x', { a: [] }],
      { k: undefined, f: () => 1, big: Number.MAX_SAFE_INTEGER, tiny: 5e-324 },
    ];
    for (const value of values)
      expect(jsonBytesBound(value, 1e6)).toBeGreaterThanOrEqual(Buffer.byteLength(JSON.stringify(value)));
    expect(jsonBytesBound({ s: 'x'.repeat(100) }, 50)).toBe(Number.POSITIVE_INFINITY);
    expect(jsonBytesBound({ when: new Date(0) }, 1e6)).toBe(Number.POSITIVE_INFINITY);
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = [deep];
    expect(jsonBytesBound(deep, 1e6)).toBe(Number.POSITIVE_INFINITY);
  });

  it('resolves declared paths in the jail before the handler runs', async () => {
    let ran = false;
    const touch = defineTool({
      name: 'touch',
      title: 'Touch',
      description: 'd',
      input: z.object({ path: z.string().describe('p') }),
      output: z.object({ real: z.string() }),
      effect: 'write',
      idempotent: true,
      paths: { path: 'existing' },
      handler: async (_input, ctx) => {
        ran = true;
        return ok({ real: ctx.path('path').real });
      },
    });
    const server = createServer({ name: 's', version: '1', tools: [touch], jail });
    const escaped = await server.callTool('touch', { path: '../x' });
    expect(errorOf(escaped)).toMatchObject({ code: 'OUTSIDE_ROOTS', details: { field: 'path' } });
    const missing = await server.callTool('touch', { path: 'nope.txt' });
    expect(errorOf(missing)).toMatchObject({ code: 'NOT_FOUND', message: "path 'nope.txt' does not exist" });
    expect(ran).toBe(false);
    expect((await server.callTool('touch', { path: '.' })).structuredContent).toEqual({ real: dir });
  });

  it('a thrown error becomes INTERNAL with a hint, not a crash', async () => {
    const broken = defineTool({
      name: 'broken',
      title: 'B',
      description: 'd',
      input: z.object({}),
      output: z.object({}),
      effect: 'read',
      handler: async () => {
        throw new Error('boom');
      },
    });
    const server = createServer({ name: 's', version: '1', tools: [broken], jail });
    const result = await server.callTool('broken', {});
    expect(result).toEqual({
      isError: true,
      content: [
        {
          type: 'text',
          text: 'Error [INTERNAL]: internal error: boom\nHint: This is a bug in the server or its environment; the server log has the stack.\nRetryable: no',
        },
      ],
      _meta: {
        'keel/error': {
          code: 'INTERNAL',
          message: 'internal error: boom',
          hint: 'This is a bug in the server or its environment; the server log has the stack.',
          retryable: false,
        },
      },
    });
  });

  it('appends an audit row for mutating calls only, replays included', async () => {
    const { createAuditLog } = await import('../src/audit/auditLog.js');
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(':memory:');
    const audit = createAuditLog(db);
    const read = defineTool({
      name: 'look',
      title: 'L',
      description: 'd',
      input: z.object({}),
      output: z.object({}),
      effect: 'read',
      handler: async () => ok({}),
    });
    const server = createServer({
      name: 's',
      version: '1',
      tools: [counterTool({ runs: 0 }), read],
      jail,
      audit,
    });
    await server.callTool('look', {});
    await server.callTool('bump', { by: 1, idempotencyKey: 'k' });
    await server.callTool('bump', { by: 1, idempotencyKey: 'k' });
    expect((await audit.list()).map((row) => [row.tool, row.outcome, row.idempotencyKey, row.args])).toEqual([
      ['bump', 'ok', 'k', { by: 1 }],
      ['bump', 'replayed', 'k', { by: 1 }],
    ]);
    expect(await audit.verify()).toMatchObject({ ok: true, rows: 2 });
    db.close();
  });

  /** A write that ignores its cancel and finishes 150 ms later, on a store and audit log sharing one database. */
  async function stubbornWrite() {
    const { createAuditLog } = await import('../src/audit/auditLog.js');
    const { createSqliteIdempotencyStore } = await import('../src/idempotency/sqliteStore.js');
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(':memory:');
    const audit = createAuditLog(db);
    const store = createSqliteIdempotencyStore(db, { audit });
    const counter = { runs: 0 };
    const server = createServer({
      name: 's',
      version: '1',
      tools: [counterTool(counter, 150)],
      jail,
      audit,
      store,
    });
    const cancelled = async (args: Record<string, unknown>) => {
      const abort = new AbortController();
      setTimeout(() => abort.abort(), 30);
      return server.callTool('bump', args, { signal: abort.signal });
    };
    const rows = async () =>
      (await audit.list()).map((row) => [
        row.outcome,
        row.errorCode,
        row.idempotencyKey,
        row.resultSha256 !== null,
      ]);
    return { db, audit, store, server, counter, cancelled, rows };
  }

  it('a keyed write answered CANCELLED that still completes is audited as done, with its completion', async () => {
    const { db, audit, server, counter, cancelled, rows } = await stubbornWrite();
    expect(errorOf(await cancelled({ by: 1, idempotencyKey: 'k' }))?.code).toBe('CANCELLED');
    await server.close();
    expect(counter.runs).toBe(1);
    expect(await rows()).toEqual([
      ['error', 'CANCELLED', 'k', true],
      ['ok', null, 'k', true],
    ]);
    expect(await audit.verify()).toMatchObject({ ok: true, rows: 2 });
    db.close();
  });

  it('an unkeyed write answered CANCELLED gets a second row for what it did when it ends', async () => {
    const { db, server, counter, cancelled, rows } = await stubbornWrite();
    expect(errorOf(await cancelled({ by: 1 }))?.code).toBe('CANCELLED');
    await server.close();
    expect(counter.runs).toBe(1);
    expect(await rows()).toEqual([
      ['error', 'CANCELLED', null, true],
      ['ok', null, null, true],
    ]);
    db.close();
  });

  it('a completion whose audit row cannot be written is not stored either', async () => {
    const { db, store, server, counter, rows } = await stubbornWrite();
    db.exec("CREATE TRIGGER refuse BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'disk full'); END");
    const result = await server.callTool('bump', { by: 1, idempotencyKey: 'k' });
    expect(result.structuredContent).toEqual({ run: 1, by: 1 });
    await server.close();
    expect(counter.runs).toBe(1);
    expect(await rows()).toEqual([]);
    // Neither written: the key is still the interrupted run's, for a retry to recover.
    expect(await store.get('s', 'k')).toMatchObject({ state: 'in_progress', result: undefined });
    db.close();
  });
});

describe('telemetry', () => {
  it('makes the tool span the parent of spans a handler starts', async () => {
    const contextManager = new AsyncLocalStorageContextManager().enable();
    context.setGlobalContextManager(contextManager);
    try {
      const exporter = new InMemorySpanExporter();
      const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
      const tracer = provider.getTracer('t');
      const nested = defineTool({
        name: 'nested',
        title: 'Nested',
        description: 'Starts a child span.',
        input: z.object({}),
        output: z.object({}),
        effect: 'read',
        handler: async () => {
          tracer.startActiveSpan('child work', (span) => span.end());
          return ok({});
        },
      });
      const server = createServer({ name: 's', version: '1', tools: [nested], jail, tracer });
      await server.callTool('nested', {});
      const [child, parent] = exporter.getFinishedSpans();
      expect([child?.name, parent?.name]).toEqual(['child work', 'tools/call nested']);
      expect(child?.parentSpanContext?.spanId).toBe(parent?.spanContext().spanId);
      expect(child?.spanContext().traceId).toBe(parent?.spanContext().traceId);
      await provider.shutdown();
    } finally {
      context.disable();
    }
  });

  it('records a span per call with the semconv attributes, parented by traceparent', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const server = createServer({
      name: 'keel-test',
      version: '1',
      tools: [counterTool({ runs: 0 })],
      jail,
      tracer: provider.getTracer('t'),
    });
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    await server.callTool(
      'bump',
      { by: 1 },
      {
        requestId: 7,
        meta: { traceparent: `00-${traceId}-b7ad6b7169203331-01`, 'keel/idempotency-key': 'k' },
      },
    );
    await server.callTool('bump', { by: 1, idempotencyKey: 'k2' }, { requestId: 8 });
    await server.callTool('bump', { by: 9, idempotencyKey: 'k2' }, { requestId: 9 });
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.name)).toEqual(['tools/call bump', 'tools/call bump', 'tools/call bump']);
    const [first, second, third] = spans;
    expect(first!.kind).toBe(SpanKind.SERVER);
    expect(first!.spanContext().traceId).toBe(traceId);
    expect(first!.parentSpanContext?.spanId).toBe('b7ad6b7169203331');
    expect(first!.attributes).toEqual({
      'mcp.method.name': 'tools/call',
      'gen_ai.operation.name': 'execute_tool',
      'gen_ai.tool.name': 'bump',
      'gen_ai.tool.call.id': '7',
      'jsonrpc.request.id': '7',
      'keel.server.name': 'keel-test',
      'keel.tool.effect': 'write',
      'keel.result.bytes': 96,
      'keel.idempotency.outcome': 'executed',
      'keel.result.truncated': false,
    });
    expect(second!.spanContext().traceId).not.toBe(traceId);
    expect(second!.parentSpanContext).toBeUndefined();
    expect(third!.attributes['error.type']).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(third!.attributes['keel.idempotency.outcome']).toBe('conflict');
    expect(third!.status).toEqual({
      code: SpanStatusCode.ERROR,
      message: "idempotency key 'k2' was already used for bump with different arguments",
    });
    await provider.shutdown();
  });
});

describe('declared paths and the server prepare step', () => {
  function pathTool(seen: string[]) {
    return defineTool({
      name: 'touch_paths',
      title: 'Touch paths',
      description: 'Reports the resolved paths.',
      input: z.object({
        path: z.string().describe('A path.'),
        others: z.array(z.string()).optional().describe('More paths.'),
      }),
      output: z.object({ real: z.string(), others: z.number() }),
      effect: 'write',
      paths: { path: 'any', others: 'any' },
      handler: async (_input, ctx) => {
        // @ts-expect-error a field the tool did not declare is a compile error, not a runtime INTERNAL
        void ctx.paths.pth;
        seen.push('handler');
        return ok({ real: ctx.paths.path.real, others: ctx.paths.others?.length ?? 0 });
      },
    });
  }

  it('hands the handler its declared paths by name, typed', async () => {
    const seen: string[] = [];
    const server = createServer({ name: 's', version: '1', tools: [pathTool(seen)], jail });
    const result = await server.callTool('touch_paths', { path: 'a.txt', others: ['b', 'c'] });
    expect(result.structuredContent).toEqual({ real: path.join(dir, 'a.txt'), others: 2 });
  });

  it('runs prepare for every tool before its handler, and a refusal answers the call', async () => {
    const seen: string[] = [];
    const server = createServer({
      name: 's',
      version: '1',
      tools: [pathTool(seen), counterTool({ runs: 0 })],
      jail,
      prepare: (call) => {
        seen.push(`prepare ${call.tool} ${[...call.paths.keys()].join(',')}`);
        return [...call.paths.values()].flat().some((p) => p.real.endsWith('.secret'))
          ? fail('PERMISSION_DENIED', 'secrets are off limits')
          : ok(undefined);
      },
    });
    expect(errorOf(await server.callTool('touch_paths', { path: 'x.secret' }))?.code).toBe(
      'PERMISSION_DENIED',
    );
    expect(
      errorOf(await server.callTool('touch_paths', { path: 'ok.txt', others: ['y.secret'] }))?.code,
    ).toBe('PERMISSION_DENIED');
    await server.callTool('touch_paths', { path: 'ok.txt' });
    await server.callTool('bump', { by: 1 });
    expect(seen).toEqual([
      'prepare touch_paths path',
      'prepare touch_paths path,others',
      'prepare touch_paths path',
      'handler',
      'prepare bump ',
    ]);
  });
});
