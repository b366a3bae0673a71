import { serveStdio as sdkServeStdio } from '@modelcontextprotocol/server/stdio';
import type { KeelServer } from '../server.js';

export interface StdioHandle {
  close(): Promise<void>;
}

/**
 * Serves a Keel server over this process's stdin/stdout. One SDK server instance is pinned per
 * connection; 2025-era (initialize) and 2026-07-28 clients are both served.
 */
export function serveStdio(
  server: KeelServer,
  options: { onerror?: (error: Error) => void } = {},
): StdioHandle {
  return sdkServeStdio(
    (context) => server.createMcpServer(context),
    options.onerror === undefined ? {} : { onerror: options.onerror },
  );
}
