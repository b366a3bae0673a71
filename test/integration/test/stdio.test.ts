import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  connectStdio,
  fixtureBin,
  startRawStdio,
  tempDir,
  toolErrorOf,
  type ClientKind,
} from '@keel/testing';
import { describe, expect, it } from 'vitest';

const kinds: ClientKind[] = ['v2', 'v1'];

async function setup() {
  const root = await tempDir('keel-root-');
  const state = await tempDir('keel-state-');
  return { root, state, args: ['--root', root, '--state-dir', state, '--log-level', 'warn'] };
}

describe.each(kinds)('fixture server over stdio, %s client', (kind) => {
  it('lists tools with annotations derived from their effect', async () => {
    const { args } = await setup();
    const client = await connectStdio(fixtureBin(args), kind);
    const { tools } = await client.listTools();
    expect(tools.map((tool) => [tool.name, tool.annotations])).toEqual([
      [
        'server_info',
        {
          title: 'Server info',
          readOnlyHint: true,
          destructiveHint: false,
          idempotentHint: true,
          openWorldHint: false,
        },
      ],
      [
        'echo',
        {
          title: 'Echo',
          readOnlyHint: true,
          destructiveHint: false,
          idempotentHint: true,
          openWorldHint: false,
        },
      ],
      [
        'append_line',
        {
          title: 'Append a line',
          readOnlyHint: false,
          destructiveHint: false,
          idempotentHint: false,
          openWorldHint: false,
        },
      ],
      [
        'set_content',
        {
          title: 'Set file content',
          readOnlyHint: false,
          destructiveHint: false,
          idempotentHint: true,
          openWorldHint: false,
        },
      ],
      [
        'remove_file',
        {
          title: 'Remove a file',
          readOnlyHint: false,
          destructiveHint: true,
          idempotentHint: true,
          openWorldHint: false,
        },
      ],
      [
        'read_text',
        {
          title: 'Read text',
          readOnlyHint: true,
          destructiveHint: false,
          idempotentHint: true,
          openWorldHint: false,
        },
      ],
      [
        'wait',
        {
          title: 'Wait',
          readOnlyHint: true,
          destructiveHint: false,
          idempotentHint: true,
          openWorldHint: false,
        },
      ],
      [
        'run_node',
        {
          title: 'Run node',
          readOnlyHint: true,
          destructiveHint: false,
          idempotentHint: true,
          openWorldHint: false,
        },
      ],
    ]);
  });

  it('replays a keyed write across a server restart, and refuses the key with other arguments', async () => {
    const { root, args } = await setup();
    const first = await connectStdio(fixtureBin(args), kind);
    const call = {
      name: 'append_line',
      arguments: { path: 'log.txt', line: 'hello' },
      _meta: { 'keel/idempotency-key': 'task-1/step-1' },
    };
    expect((await first.callTool(call)).structuredContent).toEqual({ lines: 1 });
    await first.close();

    const second = await connectStdio(fixtureBin(args), kind);
    const retried = await second.callTool(call);
    expect(retried.structuredContent).toEqual({ lines: 1 });
    expect(retried._meta?.['keel/idempotency']).toMatchObject({ key: 'task-1/step-1', replayed: true });
    const reused = await second.callTool({ ...call, arguments: { path: 'log.txt', line: 'other' } });
    expect(toolErrorOf(reused)?.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(await readFile(path.join(root, 'log.txt'), 'utf8')).toBe('hello #task-1/step-1\n');
  });

  it('pages a large file with cursors that reproduce it byte for byte, and rejects a tampered cursor', async () => {
    const { root, args } = await setup();
    const content = Array.from({ length: 5000 }, (_, i) => `line ${i} ${'é🙂'.repeat(i % 5)}`).join('\n');
    await writeFile(path.join(root, 'big.txt'), content);
    const client = await connectStdio(fixtureBin(args), kind);
    let cursor: string | undefined;
    let pages = 0;
    let joined = '';
    const cuts: Array<{ limit: number; unit: string; total: number } | undefined> = [];
    do {
      const result = await client.callTool({
        name: 'read_text',
        arguments: { path: 'big.txt', maxBytes: 8192, ...(cursor === undefined ? {} : { cursor }) },
      });
      const page = result.structuredContent as {
        text: string;
        truncated?: { nextCursor?: string; limit: number; unit: string; total: number };
      };
      joined += page.text;
      cursor = page.truncated?.nextCursor;
      if (cursor !== undefined) cuts.push(page.truncated);
      pages++;
    } while (cursor !== undefined);
    expect(joined).toBe(content);
    expect(
      new Set(cuts.map((cut) => JSON.stringify({ limit: cut?.limit, unit: cut?.unit, total: cut?.total }))),
    ).toEqual(new Set([JSON.stringify({ limit: 8192, unit: 'bytes', total: Buffer.byteLength(content) })]));
    // Pages end on line breaks, so there may be a few more than size / budget.
    expect(pages).toBeGreaterThanOrEqual(Math.ceil(Buffer.byteLength(content) / 8192));

    const firstPage = await client.callTool({
      name: 'read_text',
      arguments: { path: 'big.txt', maxBytes: 100 },
    });
    const good = (firstPage.structuredContent as { truncated: { nextCursor: string } }).truncated.nextCursor;
    const tampered = `${good.slice(0, 5)}${good[5] === 'A' ? 'B' : 'A'}${good.slice(6)}`;
    const rejected = await client.callTool({
      name: 'read_text',
      arguments: { path: 'big.txt', maxBytes: 100, cursor: tampered },
    });
    expect(toolErrorOf(rejected)?.code).toBe('INVALID_ARGUMENT');
    const foreign = await client.callTool({
      name: 'read_text',
      arguments: { path: 'other.txt', cursor: good },
    });
    expect(toolErrorOf(foreign)?.code).toBe('NOT_FOUND');
  });

  it('refuses path escapes with OUTSIDE_ROOTS and a hint naming the roots', async () => {
    const { root, args } = await setup();
    const client = await connectStdio(fixtureBin(args), kind);
    const result = await client.callTool({
      name: 'set_content',
      arguments: { path: '../escape.txt', content: 'x' },
    });
    expect(result.isError).toBe(true);
    expect(toolErrorOf(result)).toEqual({
      code: 'OUTSIDE_ROOTS',
      message: "path '../escape.txt' resolves outside the roots",
      hint: `Use a path inside the roots: ${root}.`,
      retryable: false,
      details: { roots: [root], field: 'path' },
    });
  });

  it('cancels a running call and kills the process it started', async () => {
    const { root, args } = await setup();
    const client = await connectStdio(fixtureBin(args), kind);
    const pidFile = path.join(root, 'child.pid');
    const controller = new AbortController();
    const script = `require('node:fs').writeFileSync(${JSON.stringify(pidFile)}, String(process.pid)); setInterval(() => {}, 1000);`;
    const running = client.callTool(
      { name: 'run_node', arguments: { script } },
      { signal: controller.signal },
    );
    let pid = 0;
    for (let i = 0; i < 200 && pid === 0; i++) {
      await sleep(50);
      pid = Number(await readFile(pidFile, 'utf8').catch(() => '0'));
    }
    expect(pid).toBeGreaterThan(0);
    controller.abort();
    await expect(running).rejects.toThrow(/abort/i);
    let gone = false;
    for (let i = 0; i < 100 && !gone; i++) {
      await sleep(50);
      gone = !isAlive(pid);
    }
    expect(gone).toBe(true);
    // The server is still healthy after the cancel.
    expect(
      (await client.callTool({ name: 'echo', arguments: { text: 'still here' } })).structuredContent,
    ).toEqual({ text: 'still here' });
  });

  it('reports progress while a long call runs', async () => {
    const { args } = await setup();
    const client = await connectStdio(fixtureBin(args), kind);
    const seen: Array<{ progress: number; total?: number }> = [];
    const result = await client.callTool(
      { name: 'wait', arguments: { ms: 1000 } },
      {
        onprogress: (p) =>
          seen.push({ progress: p.progress, ...(p.total === undefined ? {} : { total: p.total }) }),
      },
    );
    expect(result.isError).toBeUndefined();
    const sent = [
      { progress: 1, total: 4 },
      { progress: 2, total: 4 },
      { progress: 3, total: 4 },
      { progress: 4, total: 4 },
    ];
    // Both SDK clients run notification handlers in a microtask but settle responses at once, so a
    // progress notification read in the same chunk as the result is dropped on the client side
    // (the wire order is right; the raw test below checks it). What arrives is the server's
    // sequence, in order; only the tail can be lost. Steps 250 ms apart keep the first one clear of
    // the result even on a loaded machine.
    expect(seen.length).toBeGreaterThanOrEqual(1);
    expect(seen).toEqual(sent.slice(0, seen.length));
  });
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // Reparented children that died linger as zombies until init reaps them.
  return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

describe('progress on the wire', () => {
  it('every progress notification precedes the result it belongs to', async () => {
    const { args } = await setup();
    const session = startRawStdio(fixtureBin(args));
    session.initialize();
    session.send({
      id: 2,
      method: 'tools/call',
      params: { name: 'wait', arguments: { ms: 40 }, _meta: { progressToken: 'p' } },
    });
    const messages = await session.waitForResponse(2);
    expect(messages.slice(1).map((m) => m.id ?? `progress ${String(m.params?.['progress'])}`)).toEqual([
      'progress 1',
      'progress 2',
      'progress 3',
      'progress 4',
      2,
    ]);
  });
});

describe('idempotency across processes', () => {
  it('two server processes sharing one store run a keyed write once under concurrent calls', async () => {
    const { root, args } = await setup();
    const a = await connectStdio(fixtureBin(args), 'v2');
    const b = await connectStdio(fixtureBin(args), 'v1');
    const call = {
      name: 'append_line',
      arguments: { path: 'shared.txt', line: 'once', holdMs: 300 },
      _meta: { 'keel/idempotency-key': 'shared-key' },
    };
    const results = await Promise.all([
      ...Array.from({ length: 10 }, () => a.callTool(call)),
      ...Array.from({ length: 10 }, () => b.callTool(call)),
    ]);
    expect(new Set(results.map((r) => JSON.stringify(r.structuredContent)))).toEqual(
      new Set(['{"lines":1}']),
    );
    expect(await readFile(path.join(root, 'shared.txt'), 'utf8')).toBe('once #shared-key\n');
  });

  it('kill -9 mid-handler, restart, retry: reconcile finds the effect and it is not doubled', async () => {
    const { root, state } = await setup();
    const bin = fixtureBin([
      '--root',
      root,
      '--state-dir',
      state,
      '--log-level',
      'warn',
      '--lease-ms',
      '300',
    ]);
    // Drive the first process by hand so it can be killed while the handler holds the claim.
    const session = startRawStdio(bin);
    session.initialize();
    session.send({
      id: 2,
      method: 'tools/call',
      params: {
        name: 'append_line',
        arguments: { path: 'crash.txt', line: 'effect', holdMs: 30_000 },
        _meta: { 'keel/idempotency-key': 'crash-key' },
      },
    });
    const file = path.join(root, 'crash.txt');
    for (let i = 0; i < 200 && (await readFile(file, 'utf8').catch(() => '')) === ''; i++) await sleep(25);
    expect(await readFile(file, 'utf8')).toBe('effect #crash-key\n');
    session.child.kill('SIGKILL');
    await new Promise((resolve) => session.child.once('exit', resolve));
    await sleep(400); // let the dead process's lease run out

    const client = await connectStdio(bin, 'v2');
    const retried = await client.callTool({
      name: 'append_line',
      arguments: { path: 'crash.txt', line: 'effect', holdMs: 30_000 },
      _meta: { 'keel/idempotency-key': 'crash-key' },
    });
    expect(retried.structuredContent).toEqual({ lines: 1 });
    expect(await readFile(file, 'utf8')).toBe('effect #crash-key\n');
    // Once reconciled the result is stored: a further retry is a plain replay.
    const again = await client.callTool({
      name: 'append_line',
      arguments: { path: 'crash.txt', line: 'effect', holdMs: 30_000 },
      _meta: { 'keel/idempotency-key': 'crash-key' },
    });
    expect(again._meta?.['keel/idempotency']).toMatchObject({ replayed: true });
  });
});
