import http from 'node:http';
import https from 'node:https';
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib';

/** What the AI SDK's providers call to reach the model: the shape of the global `fetch`. */
export type Fetch = typeof globalThis.fetch;

export interface HttpFetchOptions {
  /** No byte from the server for this long fails the request; the global `fetch` waits 300 s too. */
  idleTimeoutMs?: number;
  /** An idle kept-alive connection is closed after this; below Node's server default (5 s). */
  keepAliveMs?: number;
  /** Where a request this fetch does not take goes (default: the global `fetch`). */
  fallback?: Fetch;
}

const nullBodyStatus = new Set([101, 103, 204, 205, 304]);
const redirectStatus = new Set([301, 302, 303, 307, 308]);

/**
 * A `fetch` for the model providers built on Node's own HTTP client with kept-alive connections:
 * a model call is one JSON POST whose whole answer is read before it is parsed, and for that the
 * global `fetch` (undici with WHATWG streams) costs about twice the CPU per request
 * (`pnpm bench harness`, "model adapter"). It keeps what the providers rely on of `fetch`:
 *
 * - a connection failure rejects with `TypeError('fetch failed')` whose `cause` is the socket error
 *   (its `code`, ECONNREFUSED…), which the AI SDK turns into a retryable call error;
 * - the signal aborts the request at any point, rejecting with its reason as `fetch` does;
 * - a body cut after the headers yields a response whose body read fails (`TypeError('terminated')`);
 * - `gzip`, `deflate` and `br` bodies are decoded when the caller asked for them;
 * - a silent server fails after {@link HttpFetchOptions.idleTimeoutMs}.
 *
 * Anything else — a redirect, a body that is not a string or bytes, a URL that is not http(s), an
 * environment that routes `fetch` through a proxy (`NODE_USE_ENV_PROXY`, `--use-env-proxy`) — goes to the global `fetch`, so a
 * request is never answered differently than `fetch` would have.
 */
export function createHttpFetch(options: HttpFetchOptions = {}): Fetch {
  const idleTimeoutMs = options.idleTimeoutMs ?? 300_000;
  const keepAliveMs = options.keepAliveMs ?? 4_000;
  const fallback = options.fallback ?? ((input, init) => globalThis.fetch(input, init));
  let agents: { http: http.Agent; https: https.Agent } | undefined;
  const agentFor = (protocol: string) => {
    agents ??= {
      http: new http.Agent({ keepAlive: true, timeout: keepAliveMs }),
      https: new https.Agent({ keepAlive: true, timeout: keepAliveMs }),
    };
    return protocol === 'https:' ? agents.https : agents.http;
  };

  return async (input, init) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : undefined;
    const body = init?.body;
    if (
      url === undefined ||
      !(body === undefined || body === null || typeof body === 'string' || body instanceof Uint8Array) ||
      (init?.redirect !== undefined && init.redirect !== 'follow') ||
      proxied()
    )
      return fallback(input, init);
    const target = new URL(url);
    if (target.protocol !== 'http:' && target.protocol !== 'https:') return fallback(input, init);
    const signal = init?.signal ?? undefined;
    signal?.throwIfAborted();
    const answer = await send(target, {
      method: init?.method ?? 'GET',
      headers: headerRecord(init?.headers),
      body: body ?? undefined,
      agent: agentFor(target.protocol),
      idleTimeoutMs,
      signal,
    });
    // `fetch` follows redirects itself; handing the request to it keeps that exactly (nothing was
    // done by a server that answered with a redirect).
    if (answer.redirect) return fallback(input, init);
    return answer.response;
  };
}

/** Whether Node routes `fetch` through the proxy the environment names (Node 24: `NODE_USE_ENV_PROXY`, `--use-env-proxy`). */
function proxied(): boolean {
  const flag = process.env['NODE_USE_ENV_PROXY'];
  return (
    (flag !== undefined && flag !== '' && flag !== '0') ||
    process.execArgv.includes('--use-env-proxy') ||
    (process.env['NODE_OPTIONS'] ?? '').includes('--use-env-proxy')
  );
}

interface Sent {
  method: string;
  headers: Record<string, string>;
  body: string | Uint8Array | undefined;
  agent: http.Agent;
  idleTimeoutMs: number;
  signal: AbortSignal | undefined;
}

const abortReason = (signal: AbortSignal): unknown =>
  signal.reason ?? new DOMException('This operation was aborted', 'AbortError');

function send(target: URL, sent: Sent): Promise<{ redirect: boolean; response: Response }> {
  return new Promise((resolve, reject) => {
    const client = target.protocol === 'https:' ? https : http;
    let headersSeen = false;
    let settled = false;
    const settle = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      sent.signal?.removeEventListener('abort', onAbort);
      outcome();
    };
    const request = client.request(target, { method: sent.method, headers: sent.headers, agent: sent.agent });
    const onAbort = () => {
      const reason = abortReason(sent.signal!);
      settle(() => reject(reason));
      request.destroy(reason instanceof Error ? reason : undefined);
    };
    sent.signal?.addEventListener('abort', onAbort, { once: true });
    request.setTimeout(sent.idleTimeoutMs, () =>
      request.destroy(
        Object.assign(new Error(`the server sent nothing for ${sent.idleTimeoutMs} ms`), {
          code: 'ETIMEDOUT',
        }),
      ),
    );
    request.on('error', (error) => {
      // Before the headers, as `fetch` does: the request failed. After them, the response exists
      // and its body cannot be read.
      if (!headersSeen) settle(() => reject(new TypeError('fetch failed', { cause: error })));
    });
    // A response `fetch` would not make either (a status outside 200-599) fails the request, as
    // under `fetch`, instead of throwing out of an event handler.
    const answer = (redirect: boolean, build: () => Response) =>
      settle(() => {
        try {
          resolve({ redirect, response: build() });
        } catch (error) {
          request.destroy();
          reject(new TypeError('fetch failed', { cause: error }));
        }
      });
    request.on('response', (res) => {
      headersSeen = true;
      const status = res.statusCode ?? 0;
      const init = { status, statusText: res.statusMessage ?? '', headers: responseHeaders(res.rawHeaders) };
      if (redirectStatus.has(status) && init.headers.has('location')) {
        res.resume();
        answer(true, () => new Response(null, init));
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', (error) => answer(false, () => cut(init, error)));
      res.on('aborted', () => answer(false, () => cut(init, new Error('aborted'))));
      res.on('end', () =>
        answer(false, () => {
          let bytes: Buffer;
          try {
            bytes = decoded(Buffer.concat(chunks), init.headers.get('content-encoding'));
          } catch (error) {
            return cut(init, error as Error);
          }
          return new Response(nullBodyStatus.has(status) ? null : bytes, init);
        }),
      );
    });
    request.end(sent.body);
  });
}

/** A response whose body read fails, as a body cut after the headers does under `fetch`. */
function cut(init: ResponseInit, error: Error): Response {
  const body = new ReadableStream({
    start: (controller) => controller.error(new TypeError('terminated', { cause: error })),
  });
  return new Response(nullBodyStatus.has(init.status ?? 0) ? null : body, init);
}

function decoded(bytes: Buffer, encoding: string | null): Buffer {
  switch (encoding?.trim().toLowerCase()) {
    case undefined:
    case '':
    case 'identity':
      return bytes;
    case 'gzip':
    case 'x-gzip':
      return gunzipSync(bytes);
    case 'deflate':
      return inflateSync(bytes);
    case 'br':
      return brotliDecompressSync(bytes);
    default:
      throw new Error(`content-encoding ${encoding} cannot be decoded`);
  }
}

function responseHeaders(raw: string[]): Headers {
  const headers = new Headers();
  for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i]!, raw[i + 1]!);
  return headers;
}

function headerRecord(headers: RequestInit['headers']): Record<string, string> {
  if (headers === undefined) return {};
  const record: Record<string, string> = {};
  for (const [name, value] of new Headers(headers)) record[name] = value;
  return record;
}
