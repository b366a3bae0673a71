import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { onTestFinished } from 'vitest';
import type { BinCommand } from './clients.js';

export interface RawMessage {
  jsonrpc: '2.0';
  id?: number | string;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { code: number; message: string; data?: unknown };
}

/**
 * A server bin driven by hand-written JSON-RPC over stdio, for what an SDK client hides: the exact
 * order of messages on the wire, or a process to kill -9 while a call is in flight.
 */
export interface RawStdioSession {
  child: ChildProcessWithoutNullStreams;
  send(message: Omit<RawMessage, 'jsonrpc'>): void;
  /** Sends the 2025-era `initialize` handshake. */
  initialize(): void;
  /** Every message the server wrote so far, in order. */
  messages(): RawMessage[];
  /** Waits (bounded) until the response with `id` arrives; returns every message so far. */
  waitForResponse(id: number | string, timeoutMs?: number): Promise<RawMessage[]>;
}

export function startRawStdio(bin: BinCommand): RawStdioSession {
  const child = spawn(bin.command, [...bin.args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...bin.env },
  });
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.resume();
  const messages = () =>
    out
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as RawMessage);
  const session: RawStdioSession = {
    child,
    send: (message) => child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', ...message })}\n`),
    initialize() {
      session.send({
        id: 'init',
        method: 'initialize',
        params: {
          protocolVersion: '2025-06-18',
          capabilities: {},
          clientInfo: { name: 'raw', version: '0' },
        },
      });
      session.send({ method: 'notifications/initialized' });
    },
    messages,
    async waitForResponse(id, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (!messages().some((message) => message.id === id && message.method === undefined)) {
        if (Date.now() > deadline)
          throw new Error(`no response ${String(id)} within ${timeoutMs} ms:\n${out}`);
        await sleep(20);
      }
      return messages();
    },
  };
  return session;
}
