import { timingSafeEqual } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostHeaderValidation, originValidation, toNodeHandler } from '@modelcontextprotocol/node';
import { createMcpHandler } from '@modelcontextprotocol/server';
import { KeelError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { KeelServer } from '../server.js';

export interface HttpOptions {
  /** Interface to bind; loopback unless a bearer token is set. */
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Required on every request when set; required to be set when binding beyond loopback. */
  token?: string | undefined;
  /** Host header names accepted besides the loopback names and the bound host. */
  allowedHosts?: readonly string[];
  /** Origin hostnames accepted besides loopback (browser-based clients). */
  allowedOrigins?: readonly string[];
  logger: Logger;
}

export interface HttpHandle {
  url: string;
  port: number;
  /** Stops accepting, lets calls in flight finish (bounded), then closes everything. */
  close(graceMs?: number): Promise<void>;
}

const loopbackNames = ['localhost', '127.0.0.1', '[::1]', '::1'];

export function isLoopbackHost(host: string): boolean {
  return loopbackNames.includes(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Serves a Keel server over Streamable HTTP at `/mcp`: 2026-07-28 stateless serving with the
 * 2025-era stateless fallback, DNS-rebinding protection (Host and Origin checked against an
 * allowlist) and a bearer token for anything reachable beyond loopback.
 */
export async function serveHttp(server: KeelServer, options: HttpOptions): Promise<HttpHandle> {
  if (!isLoopbackHost(options.host) && (options.token === undefined || options.token.length < 16)) {
    throw new KeelError('PERMISSION_DENIED', `refusing to serve on ${options.host} without a bearer token`, {
      hint: 'Set KEEL_HTTP_TOKEN to a random secret of 16+ characters, or bind to 127.0.0.1.',
    });
  }
  const hostNames = [...loopbackNames, ...(options.allowedHosts ?? [])];
  if (!isLoopbackHost(options.host) && options.host !== '0.0.0.0' && options.host !== '::')
    hostNames.push(options.host);
  const validateHost = hostHeaderValidation(hostNames);
  const validateOrigin = originValidation([...loopbackNames, ...(options.allowedOrigins ?? [])]);
  const mcp = createMcpHandler((context) => server.createMcpServer(context), {
    onerror: (error) => options.logger.debug('mcp http exchange error', { error }),
  });
  const handle = toNodeHandler(mcp, {
    onerror: (error: Error) => options.logger.error('mcp http handler failed', { error }),
  });
  const expectedToken = options.token === undefined ? undefined : Buffer.from(`Bearer ${options.token}`);

  const httpServer = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (!validateHost(req, res) || !validateOrigin(req, res)) {
      options.logger.warn('http request refused: host or origin not allowed', {
        host: req.headers.host,
        origin: req.headers.origin,
      });
      return;
    }
    if (expectedToken !== undefined) {
      const given = Buffer.from(req.headers.authorization ?? '');
      if (given.length !== expectedToken.length || !timingSafeEqual(given, expectedToken)) {
        res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer realm="keel"' });
        res.end(
          JSON.stringify({ error: 'unauthorized', hint: 'Send Authorization: Bearer <KEEL_HTTP_TOKEN>.' }),
        );
        return;
      }
    }
    if (url.pathname === '/healthz' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ status: 'ok', server: server.name, version: server.version }));
      return;
    }
    if (url.pathname !== '/mcp') {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'not found', hint: 'The MCP endpoint is /mcp.' }));
      return;
    }
    // IncomingMessage.method is optional in @types/node but always set on a server request.
    handle(req as Parameters<typeof handle>[0], res).catch((error: unknown) => {
      options.logger.error('mcp http request failed', { error });
      if (!res.headersSent) res.writeHead(500).end();
    });
  });

  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(options.port, options.host, () => {
      httpServer.off('error', reject);
      resolve();
    });
  });
  const address = httpServer.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${shownHost}:${address.port}/mcp`,
    port: address.port,
    async close(graceMs = 5000) {
      const closed = new Promise<void>((resolve) => httpServer.close(() => resolve()));
      httpServer.closeIdleConnections();
      const timer = setTimeout(() => httpServer.closeAllConnections(), graceMs);
      timer.unref();
      await server.close({ graceMs });
      await mcp.close();
      await closed;
      clearTimeout(timer);
    },
  };
}
