import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { canonicalJson } from '@keel/kit';

/**
 * The HTTP exchanges between a model adapter and a provider, in order. Headers are not kept (they
 * carry API keys); bodies are kept parsed when they are JSON, so a cassette diffs readably.
 */
export interface Cassette {
  version: 1;
  interactions: Array<{
    request: { method: string; path: string; body: unknown };
    response: { status: number; contentType: string; body: unknown };
  }>;
}

export interface CassetteServer {
  /** Base URL including `/v1`. */
  url: string;
  /** Requests that did not match the next recorded one (a replaying server answers them 599). */
  mismatches: string[];
  /** How many recorded interactions were served. */
  served(): number;
  close(): Promise<void>;
}

const readBody = (req: IncomingMessage) =>
  new Promise<string>((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => resolve(text));
    req.on('error', reject);
  });

const parsed = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
};

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
}

const closing = (server: Server) => () =>
  new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });

/** A proxy on 127.0.0.1 that forwards every request to `upstream` and records the exchange. */
export async function startRecordingProxy(
  upstream: string,
): Promise<CassetteServer & { cassette: Cassette }> {
  const origin = new URL(upstream).origin;
  const cassette: Cassette = { version: 1, interactions: [] };
  const server = createServer((req, res) => {
    void (async () => {
      const body = await readBody(req);
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers))
        if (typeof value === 'string' && name !== 'host' && name !== 'content-length') headers[name] = value;
      const answer = await fetch(`${origin}${req.url ?? '/'}`, {
        method: req.method ?? 'GET',
        headers,
        ...(body === '' ? {} : { body }),
      });
      const text = await answer.text();
      const contentType = answer.headers.get('content-type') ?? 'application/octet-stream';
      cassette.interactions.push({
        request: { method: req.method ?? 'GET', path: req.url ?? '/', body: parsed(body) },
        response: { status: answer.status, contentType, body: parsed(text) },
      });
      res.writeHead(answer.status, { 'content-type': contentType }).end(text);
    })().catch((error: unknown) => res.writeHead(502).end(String(error)));
  });
  return {
    url: await listen(server),
    cassette,
    mismatches: [],
    served: () => cassette.interactions.length,
    close: closing(server),
  };
}

/**
 * Serves a cassette: each request must equal the next recorded one (method, path and body, as
 * canonical JSON) and gets its recorded response; anything else is a mismatch, answered 599.
 */
export async function startCassetteServer(cassette: Cassette): Promise<CassetteServer> {
  let next = 0;
  const mismatches: string[] = [];
  const server = createServer((req, res) => {
    void readBody(req).then((body) => {
      const want = cassette.interactions[next];
      const got = { method: req.method ?? 'GET', path: req.url ?? '/', body: parsed(body) };
      if (want === undefined || canonicalJson(want.request) !== canonicalJson(got)) {
        mismatches.push(
          want === undefined
            ? `request ${next + 1} is past the end of the cassette (${cassette.interactions.length} recorded)`
            : `request ${next + 1} differs from the recording: ${canonicalJson(got).slice(0, 400)}`,
        );
        res
          .writeHead(599, { 'content-type': 'application/json' })
          .end('{"error":{"message":"not in the cassette"}}');
        return;
      }
      next++;
      const text =
        typeof want.response.body === 'string' ? want.response.body : JSON.stringify(want.response.body);
      res.writeHead(want.response.status, { 'content-type': want.response.contentType }).end(text);
    });
  });
  return { url: await listen(server), mismatches, served: () => next, close: closing(server) };
}
