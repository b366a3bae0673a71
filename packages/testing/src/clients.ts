import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport as StdioClientTransportV1 } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport as StreamableHTTPClientTransportV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema as ElicitRequestSchemaV1 } from '@modelcontextprotocol/sdk/types.js';
import { onTestFinished } from 'vitest';

/** Which client library: v2 (`@modelcontextprotocol/client`) or v1 (`@modelcontextprotocol/sdk`, as older IDEs ship). */
export type ClientKind = 'v2' | 'v1';

/** What tests need of a client; both SDK generations provide it. */
export interface McpTestClient {
  kind: ClientKind;
  listTools(): Promise<{
    tools: Array<{
      name: string;
      annotations?: Record<string, unknown>;
      inputSchema: unknown;
      outputSchema?: unknown;
      title?: string;
    }>;
  }>;
  callTool(
    params: { name: string; arguments?: Record<string, unknown>; _meta?: Record<string, unknown> },
    options?: {
      signal?: AbortSignal;
      timeout?: number;
      onprogress?: (p: { progress: number; total?: number }) => void;
    },
  ): Promise<ToolCallResult>;
  close(): Promise<void>;
}

export interface ToolCallResult {
  isError?: boolean;
  content: Array<{ type: string; text?: string }>;
  structuredContent?: Record<string, unknown>;
  _meta?: Record<string, unknown>;
}

/** What the person at a test client answers to a form-mode elicitation. */
export interface ElicitAnswer {
  action: 'accept' | 'decline' | 'cancel';
  content?: Record<string, string | number | boolean>;
}

export interface ConnectOptions {
  /**
   * The v2 client's protocol era: `legacy` (the 2025 `initialize` handshake, the v2 client's default)
   * or `modern` (2026-07-28, negotiated by probing). The v1 client is always legacy.
   */
  era?: 'legacy' | 'modern';
  /** Declares the elicitation capability (form mode) and answers each form with this. */
  onElicit?: (params: { message: string; requestedSchema: unknown }) => ElicitAnswer | Promise<ElicitAnswer>;
}

export interface BinCommand {
  command: string;
  args: readonly string[];
  env?: Record<string, string>;
  cwd?: string;
}

/** Spawns a server bin over stdio and connects a real client; closed when the test finishes. */
export async function connectStdio(
  bin: BinCommand,
  kind: ClientKind = 'v2',
  options: ConnectOptions = {},
): Promise<McpTestClient & { stderr: () => string; pid: number | undefined }> {
  const params = {
    command: bin.command,
    args: [...bin.args],
    env: { ...(process.env as Record<string, string>), ...bin.env },
    stderr: 'pipe' as const,
    ...(bin.cwd === undefined ? {} : { cwd: bin.cwd }),
  };
  let stderr = '';
  let client: McpTestClient;
  let pid: number | undefined;
  if (kind === 'v2') {
    const transport = new StdioClientTransport(params);
    const c = createV2Client(options);
    transport.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await c.connect(transport);
    pid = transport.pid ?? undefined;
    client = wrap(kind, c);
  } else {
    const transport = new StdioClientTransportV1(params);
    const c = createV1Client(options);
    transport.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await c.connect(transport);
    pid = transport.pid ?? undefined;
    client = wrap(kind, c);
  }
  onTestFinished(() => client.close().catch(() => undefined));
  return { ...client, stderr: () => stderr, pid };
}

/** Connects a real client to a Streamable HTTP endpoint. */
export async function connectHttp(
  url: string,
  kind: ClientKind = 'v2',
  options: { token?: string } & ConnectOptions = {},
): Promise<McpTestClient> {
  const requestInit =
    options.token === undefined ? undefined : { headers: { authorization: `Bearer ${options.token}` } };
  let client: McpTestClient;
  if (kind === 'v2') {
    const c = createV2Client(options);
    await c.connect(
      new StreamableHTTPClientTransport(new URL(url), requestInit === undefined ? {} : { requestInit }),
    );
    client = wrap(kind, c);
  } else {
    const c = createV1Client(options);
    await c.connect(
      new StreamableHTTPClientTransportV1(new URL(url), requestInit === undefined ? {} : { requestInit }),
    );
    client = wrap(kind, c);
  }
  onTestFinished(() => client.close().catch(() => undefined));
  return client;
}

function createV2Client(options: ConnectOptions): Client {
  const onElicit = options.onElicit;
  const c = new Client(
    { name: 'keel-test', version: '0.0.0' },
    {
      ...(onElicit === undefined ? {} : { capabilities: { elicitation: { form: {} } } }),
      ...(options.era === 'modern' ? { versionNegotiation: { mode: 'auto' as const } } : {}),
    },
  );
  if (onElicit !== undefined)
    c.setRequestHandler('elicitation/create', async (request) => {
      const params = request.params as { message: string; requestedSchema?: unknown };
      return (await onElicit({ message: params.message, requestedSchema: params.requestedSchema })) as never;
    });
  return c;
}

function createV1Client(options: ConnectOptions): ClientV1 {
  const onElicit = options.onElicit;
  const c = new ClientV1(
    { name: 'keel-test-v1', version: '0.0.0' },
    onElicit === undefined ? {} : { capabilities: { elicitation: {} } },
  );
  if (onElicit !== undefined)
    c.setRequestHandler(ElicitRequestSchemaV1, async (request) => {
      const params = request.params as { message: string; requestedSchema?: unknown };
      return (await onElicit({ message: params.message, requestedSchema: params.requestedSchema })) as never;
    });
  return c;
}

function wrap(kind: ClientKind, c: Client | ClientV1): McpTestClient {
  return {
    kind,
    listTools: () => (c as Client).listTools() as ReturnType<McpTestClient['listTools']>,
    // v2 takes (params, options); v1 takes (params, resultSchema, options).
    callTool: (params, options) =>
      (kind === 'v2'
        ? (c as Client).callTool(params as never, options as never)
        : (c as ClientV1).callTool(params as never, undefined, options as never)) as Promise<ToolCallResult>,
    close: () => c.close(),
  };
}

export interface HttpServerProcess {
  url: string;
  child: ChildProcess;
  stderr: () => string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts a server bin with `--http --port 0` and waits for its `listening` log line to learn the
 * URL. Stopped when the test finishes.
 */
export async function startHttpServer(
  bin: BinCommand,
  options: { timeoutMs?: number } = {},
): Promise<HttpServerProcess> {
  const child = spawn(bin.command, [...bin.args], {
    env: { ...process.env, ...bin.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(bin.cwd === undefined ? {} : { cwd: bin.cwd }),
  });
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // Registered before waiting for 'listening': a server that never says it is listening is still ended.
  onTestFinished(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`server did not start in time:\n${stderr}`)),
      options.timeoutMs ?? 15_000,
    );
    const lines = createInterface({ input: child.stderr! });
    lines.on('line', (line) => {
      stderr += `${line}\n`;
      try {
        const parsed = JSON.parse(line) as { msg?: string; url?: string };
        if (parsed.msg === 'listening' && parsed.url !== undefined) {
          clearTimeout(timer);
          resolve(parsed.url);
        }
      } catch {
        // Not a log line.
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening:\n${stderr}`));
    });
  });
  const handle: HttpServerProcess = {
    url,
    child,
    stderr: () => stderr,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return await exited;
    },
  };
  return handle;
}

/** The fixture server bin, as a command. */
export function fixtureBin(args: readonly string[], env: Record<string, string> = {}): BinCommand {
  return {
    command: process.execPath,
    args: [new URL('./fixture/bin.js', import.meta.url).pathname, ...args],
    env,
  };
}

/** The structured error of a failed call (from `_meta["keel/error"]`). */
export function toolErrorOf(
  result: ToolCallResult,
): { code: string; message: string; hint?: string; retryable: boolean } | undefined {
  return result._meta?.['keel/error'] as never;
}
