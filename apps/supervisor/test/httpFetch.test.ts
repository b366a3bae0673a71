import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { ModelConfig } from '../src/config/schema.js';
import { createHttpFetch, type Fetch } from '../src/models/httpFetch.js';
import { createModel } from '../src/models/index.js';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  socket: number;
}

/** A real HTTP server on 127.0.0.1 that records each request (and which connection it came on). */
async function serve(handler: (req: http.IncomingMessage, res: http.ServerResponse, seen: Seen) => void) {
  const seen: Seen[] = [];
  const sockets = new Map<object, number>();
  let closedEarly = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      if (!sockets.has(req.socket)) sockets.set(req.socket, sockets.size + 1);
      const one = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body,
        socket: sockets.get(req.socket)!,
      };
      seen.push(one);
      res.on('close', () => {
        if (!res.writableFinished) closedEarly++;
      });
      handler(req, res, one);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { url, seen, closedEarly: () => closedEarly, server };
}

const post = (fetch: Fetch, url: string, body: string, init: RequestInit = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, ...init });

const rejectionOf = async (promise: Promise<unknown>) => {
  try {
    await promise;
  } catch (error) {
    return error as Error & { cause?: Error & { code?: string } };
  }
  throw new Error('expected a rejection');
};

describe('the model providers’ fetch (Node’s HTTP client)', () => {
  it('sends the method, headers and body as given (with their length) and answers status, headers and body as sent', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(201, 'Made', [
        ['content-type', 'application/json'],
        ['x-request-id', 'req-7'],
        ['set-cookie', 'a=1'],
        ['set-cookie', 'b=2'],
      ]);
      res.end('{"ok":"é"}');
    });
    const fetch = createHttpFetch();
    const body = JSON.stringify({ messages: [{ role: 'user', content: 'héllo' }] });
    const response = await post(fetch, `${server.url}/v1/chat/completions`, body, {
      headers: { 'content-type': 'application/json', authorization: 'Bearer k' },
    });

    expect(server.seen.map((s) => [s.method, s.url, s.body])).toEqual([
      ['POST', '/v1/chat/completions', body],
    ]);
    expect(server.seen[0]!.headers['authorization']).toBe('Bearer k');
    expect(server.seen[0]!.headers['content-length']).toBe(String(Buffer.byteLength(body)));
    expect(server.seen[0]!.headers['transfer-encoding']).toBeUndefined();
    expect([response.status, response.statusText, response.ok]).toEqual([201, 'Made', true]);
    expect(response.headers.get('x-request-id')).toBe('req-7');
    expect(response.headers.getSetCookie()).toEqual(['a=1', 'b=2']);
    expect(await response.text()).toBe('{"ok":"é"}');
  });

  it('keeps the connection alive: three calls in a row go over one', async () => {
    const server = await serve((_req, res) => res.end('{}'));
    const fetch = createHttpFetch();
    for (let i = 0; i < 3; i++) await (await post(fetch, server.url, `{"n":${i}}`)).text();

    expect(server.seen.map((s) => [s.body, s.socket])).toEqual([
      ['{"n":0}', 1],
      ['{"n":1}', 1],
      ['{"n":2}', 1],
    ]);
  });

  it('models built with one fetch share its connection: a worker’s tasks, one after another', async () => {
    const server = await serve((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          id: 'chatcmpl-1',
          object: 'chat.completion',
          created: 1,
          model: 'm',
          choices: [{ index: 0, message: { role: 'assistant', content: 'done' }, finish_reason: 'stop' }],
          usage: { prompt_tokens: 3, completion_tokens: 1 },
        }),
      );
    });
    // Only the fields the OpenAI-compatible model reads; the rest are the engine's.
    const config = {
      provider: 'openai-compatible',
      model: 'm',
      baseURL: `${server.url}/v1`,
      promptCacheKey: false,
    } as ModelConfig;
    const fetch = createHttpFetch();
    const texts = [];
    for (const taskId of ['task-1', 'task-2']) {
      const model = createModel('main', config, { env: {}, playbook: undefined, fetch });
      const reply = await model.generate(
        {
          messages: [{ role: 'user', content: 'hi' }],
          tools: [],
          maxTokens: 10,
          signal: new AbortController().signal,
        },
        { taskId, agent: 'coding', step: 1, invocation: 1 },
      );
      texts.push(reply.text);
    }

    expect(texts).toEqual(['done', 'done']);
    expect(server.seen.map((s) => [s.url, s.socket])).toEqual([
      ['/v1/chat/completions', 1],
      ['/v1/chat/completions', 1],
    ]);
  });

  it('a server that cannot be reached: TypeError "fetch failed" whose cause names the socket error, as fetch does', async () => {
    const server = await serve((_req, res) => res.end());
    const url = server.url;
    await new Promise<void>((resolve) => server.server.close(() => resolve()));
    const error = await rejectionOf(post(createHttpFetch(), url, '{}'));

    expect(error).toBeInstanceOf(TypeError);
    expect([error.message, error.cause?.code]).toEqual(['fetch failed', 'ECONNREFUSED']);
  });

  it('a connection dropped before any answer: "fetch failed" with ECONNRESET', async () => {
    const server = await serve((req) => req.socket.destroy());
    const error = await rejectionOf(post(createHttpFetch(), server.url, '{}'));

    expect(error).toBeInstanceOf(TypeError);
    expect([error.message, error.cause?.code]).toEqual(['fetch failed', 'ECONNRESET']);
  });

  it('the signal aborts a call the server has not answered: rejected with its reason, the connection closed', async () => {
    const server = await serve(() => undefined);
    const controller = new AbortController();
    const pending = post(createHttpFetch(), server.url, '{}', { signal: controller.signal });
    await until(() => server.seen.length === 1);
    controller.abort();
    const error = await rejectionOf(pending);

    expect([error.name, error.message]).toEqual(['AbortError', 'This operation was aborted']);
    await until(() => server.closedEarly() === 1);
  });

  it('a signal aborted already sends nothing', async () => {
    const server = await serve((_req, res) => res.end('{}'));
    const error = await rejectionOf(
      post(createHttpFetch(), server.url, '{}', { signal: AbortSignal.abort() }),
    );

    expect(error.name).toBe('AbortError');
    expect(server.seen).toEqual([]);
  });

  it('a body cut after the headers: the response exists and reading it fails with "terminated", as under fetch', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"choices":');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const response = await post(createHttpFetch(), server.url, '{}');
    const error = await rejectionOf(response.text());

    expect(response.status).toBe(200);
    expect([error.constructor.name, error.message]).toEqual(['TypeError', 'terminated']);
  });

  it('decodes a gzip body when the caller asked for one', async () => {
    const server = await serve((req, res) => {
      res.writeHead(200, { 'content-encoding': 'gzip', 'x-asked': String(req.headers['accept-encoding']) });
      res.end(gzipSync('{"packed":true}'));
    });
    const response = await post(createHttpFetch(), server.url, '{}', {
      headers: { 'accept-encoding': 'gzip' },
    });

    expect(response.headers.get('x-asked')).toBe('gzip');
    expect(await response.text()).toBe('{"packed":true}');
  });

  it('a status fetch would refuse (600) fails the request as "fetch failed", the process unharmed', async () => {
    const server = await serve((req) => {
      req.socket.end('HTTP/1.1 600 Odd\r\ncontent-length: 2\r\n\r\n{}');
    });
    const error = await rejectionOf(post(createHttpFetch(), server.url, '{}'));

    expect(error).toBeInstanceOf(TypeError);
    expect([error.message, error.cause?.constructor.name]).toEqual(['fetch failed', 'RangeError']);
  });

  it('a 204 answers with no body', async () => {
    const server = await serve((_req, res) => {
      res.statusCode = 204;
      res.end();
    });
    const response = await post(createHttpFetch(), server.url, '{}');

    expect([response.status, response.body, await response.text()]).toEqual([204, null, '']);
  });

  it('a redirect is handed to the global fetch, which follows it (307 keeps method and body)', async () => {
    const server = await serve((req, res, seen) => {
      if (req.url === '/old') {
        res.writeHead(307, { location: '/new' });
        res.end();
      } else res.end(`moved: ${seen.method} ${seen.body}`);
    });
    const handed: string[] = [];
    const fetch = createHttpFetch({
      fallback: (input, init) => {
        handed.push(input instanceof Request ? input.url : input.toString());
        return globalThis.fetch(input, init);
      },
    });
    const response = await post(fetch, `${server.url}/old`, '{"a":1}');

    expect(await response.text()).toBe('moved: POST {"a":1}');
    expect(handed).toEqual([`${server.url}/old`]);
    expect(server.seen.map((s) => s.url)).toEqual(['/old', '/old', '/new']);
  });

  it('where Node routes fetch through a proxy (NODE_USE_ENV_PROXY=1), every request goes to the global fetch', async () => {
    const server = await serve((_req, res) => res.end('{}'));
    const handed: string[] = [];
    const fetch = createHttpFetch({
      fallback: async (input) => {
        handed.push(typeof input === 'string' ? input : 'other');
        return new Response('from fetch');
      },
    });
    const before = process.env['NODE_USE_ENV_PROXY'];
    process.env['NODE_USE_ENV_PROXY'] = '1';
    onTestFinished(() => {
      if (before === undefined) delete process.env['NODE_USE_ENV_PROXY'];
      else process.env['NODE_USE_ENV_PROXY'] = before;
    });
    const response = await post(fetch, server.url, '{}');

    expect([await response.text(), handed, server.seen.length]).toEqual(['from fetch', [server.url], 0]);
  });

  it('a call longer than the kept-alive connection’s idle time is not cut; a server silent past the idle timeout is', async () => {
    const server = await serve((req, res) => {
      if (req.url === '/slow') setTimeout(() => res.end('late'), 300);
    });
    const fetch = createHttpFetch({ keepAliveMs: 50, idleTimeoutMs: 600 });
    expect(await (await post(fetch, `${server.url}/slow`, '{}')).text()).toBe('late');
    // Reused connection (it was freed with the 50 ms idle timer set on it): still not cut at 50 ms.
    expect(await (await post(fetch, `${server.url}/slow`, '{}')).text()).toBe('late');

    const error = await rejectionOf(post(fetch, `${server.url}/silent`, '{}'));
    expect(error).toBeInstanceOf(TypeError);
    expect([error.message, error.cause?.code, error.cause?.message]).toEqual([
      'fetch failed',
      'ETIMEDOUT',
      'the server sent nothing for 600 ms',
    ]);
  });

  it('an idle kept-alive connection is closed after keepAliveMs; the next call opens a new one', async () => {
    const server = await serve((_req, res) => res.end('{}'));
    const fetch = createHttpFetch({ keepAliveMs: 50 });
    await (await post(fetch, server.url, '1')).text();
    await new Promise((resolve) => setTimeout(resolve, 200));
    await (await post(fetch, server.url, '2')).text();

    expect(server.seen.map((s) => s.socket)).toEqual([1, 2]);
  });

  it('speaks https with the CA Node trusts (NODE_EXTRA_CA_CERTS), in a process of its own', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'keel-https-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        path.join(dir, 'key.pem'),
        '-out',
        path.join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    const script = path.join(dir, 'https.mjs');
    writeFileSync(
      script,
      `import https from 'node:https';
import { readFileSync } from 'node:fs';
const { createHttpFetch } = await import(${JSON.stringify(new URL('../dist/models/httpFetch.js', import.meta.url).href)});
const server = https.createServer({ key: readFileSync(${JSON.stringify(path.join(dir, 'key.pem'))}), cert: readFileSync(${JSON.stringify(path.join(dir, 'cert.pem'))}) },
  (req, res) => { let b = ''; req.on('data', (c) => (b += c)); req.on('end', () => res.end('tls:' + b)); });
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const response = await createHttpFetch()('https://127.0.0.1:' + server.address().port + '/v1', { method: 'POST', body: '{"x":1}' });
console.log(response.status + ' ' + (await response.text()));
server.close();
`,
    );
    const child = spawn(process.execPath, [script], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: path.join(dir, 'cert.pem') },
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const code = await new Promise((resolve) => child.on('close', resolve));

    expect([code, out]).toEqual([0, '200 tls:{"x":1}\n']);
  });
});

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(condition()).toBe(true);
}
