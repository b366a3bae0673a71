// A minimal MCP client over stdio (newline-delimited JSON-RPC): the campaign starts thousands of
// servers, so it speaks the protocol itself rather than load a full SDK client per round.
import { spawn } from 'node:child_process';

/** Starts `node bin args` in `cwd` and completes the initialize handshake. */
export async function startServer({ bin, args, cwd, env }) {
  const child = spawn(process.execPath, [bin, ...args], {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  let buffer = '';
  let nextId = 1;
  const pending = new Map();
  const exited = new Promise((resolve) =>
    child.once('exit', (code, signal) => {
      for (const { reject } of pending.values()) reject(new Error(`server exited (${signal ?? code})`));
      pending.clear();
      resolve({ code, signal });
    }),
  );
  child.stderr.on('data', (chunk) => (stderr += chunk.toString()));
  child.stdin.on('error', () => undefined);
  child.stdout.on('data', (chunk) => {
    buffer += chunk.toString();
    for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (line.trim() === '') continue;
      const message = JSON.parse(line);
      if (message.id === undefined || !pending.has(message.id)) continue;
      const { resolve, reject } = pending.get(message.id);
      pending.delete(message.id);
      if (message.error !== undefined) reject(new Error(`${message.error.code}: ${message.error.message}`));
      else resolve(message.result);
    }
  });
  const send = (message) => child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', ...message })}\n`);
  const request = (method, params) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      send({ id, method, params });
    });
  await request('initialize', {
    protocolVersion: '2025-06-18',
    capabilities: {},
    clientInfo: { name: 'keel-chaos', version: '0.1.0' },
  });
  send({ method: 'notifications/initialized' });
  return {
    pid: child.pid,
    exited,
    stderr: () => stderr,
    /** tools/call; rejects if the server dies first. */
    call: (name, args, key) =>
      request('tools/call', {
        name,
        arguments: args,
        ...(key === undefined ? {} : { _meta: { 'keel/idempotency-key': key } }),
      }),
    /** Closes stdin (a clean stop) and waits for the exit. */
    async close() {
      child.stdin.end();
      return await exited;
    },
    kill() {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
      return exited;
    },
  };
}

/** The last structured log line a server wrote (its crash point's, when it killed itself at one). */
export function lastLogLine(stderr) {
  const lines = stderr.split('\n').filter((line) => line.startsWith('{'));
  return lines.length === 0 ? undefined : JSON.parse(lines.at(-1));
}
