import { request } from 'node:http';
import { spawn } from 'node:child_process';
import {
  connectHttp,
  fixtureBin,
  startHttpServer,
  tempDir,
  toolErrorOf,
  type ClientKind,
} from '@keel/testing';
import { fixtureToolNames } from './fixtureTools.js';
import { describe, expect, it } from 'vitest';

async function serve(extraEnv: Record<string, string> = {}, extraArgs: string[] = []) {
  const root = await tempDir('keel-root-');
  const state = await tempDir('keel-state-');
  return await startHttpServer(
    fixtureBin(
      ['--root', root, '--state-dir', state, '--http', '--port', '0', '--log-level', 'info', ...extraArgs],
      extraEnv,
    ),
  );
}

/** A raw POST with the headers a browser under DNS rebinding, or a stranger, would send. */
function rawPost(url: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const target = new URL(url);
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
  });
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          ...headers,
        },
      },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe.each<ClientKind>(['v2', 'v1'])('Streamable HTTP, %s client', (kind) => {
  it('serves tools and keyed writes', async () => {
    const server = await serve();
    const client = await connectHttp(server.url, kind);
    expect((await client.listTools()).tools.map((t) => t.name)).toEqual([...fixtureToolNames]);
    expect(
      (await client.callTool({ name: 'echo', arguments: { text: 'over http' } })).structuredContent,
    ).toEqual({ text: 'over http' });
    const call = {
      name: 'append_line',
      arguments: { path: 'h.txt', line: 'x' },
      _meta: { 'keel/idempotency-key': `http-${kind}` },
    };
    expect((await client.callTool(call)).structuredContent).toEqual({ lines: 1 });
    expect((await client.callTool(call))._meta?.['keel/idempotency']).toMatchObject({ replayed: true });
    expect(
      toolErrorOf(await client.callTool({ name: 'read_text', arguments: { path: '/etc/passwd' } }))?.code,
    ).toBe('OUTSIDE_ROOTS');
  });
});

describe('HTTP guards', () => {
  it('refuses a foreign Host or Origin (DNS rebinding) with 403', async () => {
    const server = await serve();
    const port = new URL(server.url).port;
    expect((await rawPost(server.url, { host: 'evil.example.com' })).status).toBe(403);
    expect(
      (await rawPost(server.url, { host: `127.0.0.1:${port}`, origin: 'http://evil.example.com' })).status,
    ).toBe(403);
    expect(
      (await rawPost(server.url, { host: `localhost:${port}`, origin: `http://localhost:${port}` })).status,
    ).toBe(200);
  });

  it('requires the bearer token when one is set', async () => {
    const token = 'a-test-token-of-enough-length';
    const server = await serve({ KEEL_HTTP_TOKEN: token });
    const port = new URL(server.url).port;
    const missing = await rawPost(server.url, { host: `127.0.0.1:${port}` });
    expect(missing).toEqual({
      status: 401,
      body: JSON.stringify({ error: 'unauthorized', hint: 'Send Authorization: Bearer <KEEL_HTTP_TOKEN>.' }),
    });
    expect(
      (await rawPost(server.url, { host: `127.0.0.1:${port}`, authorization: 'Bearer wrong' })).status,
    ).toBe(401);
    const client = await connectHttp(server.url, 'v2', { token });
    expect(
      (await client.callTool({ name: 'echo', arguments: { text: 'authorized' } })).structuredContent,
    ).toEqual({ text: 'authorized' });
  });

  it('will not bind beyond loopback without a token, and says how to fix it', async () => {
    const root = await tempDir('keel-root-');
    const bin = fixtureBin([
      '--root',
      root,
      '--state-dir',
      await tempDir('keel-state-'),
      '--http',
      '--host',
      '0.0.0.0',
      '--port',
      '0',
    ]);
    const child = spawn(bin.command, [...bin.args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, KEEL_HTTP_TOKEN: '' },
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(2);
    const line = JSON.parse(stderr.trim().split('\n').at(-1)!) as { msg: string; hint: string };
    expect([line.msg, line.hint]).toEqual([
      'cannot serve HTTP: refusing to serve on 0.0.0.0 without a bearer token',
      'Set KEEL_HTTP_TOKEN to a random secret of 16+ characters, or bind to 127.0.0.1.',
    ]);
  });

  it('shuts down cleanly on SIGTERM', async () => {
    const server = await serve();
    expect(await server.stop('SIGTERM')).toBe(0);
    expect(server.stderr()).toMatch(/"msg":"shutting down".*"reason":"SIGTERM"/);
  });
});
