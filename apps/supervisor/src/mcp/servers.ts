import path from 'node:path';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { canonicalJson, KeelError, sha256Hex } from '@keel/kit';
import type { ServerConfig } from '../config/schema.js';
import { builtinBinPath, type BuiltinServer } from './builtins.js';

/** A tool as a server listed it. */
export interface CatalogTool {
  server: string;
  name: string;
  description: string;
  inputSchema: Record<string, unknown>;
  annotations: {
    readOnlyHint?: boolean;
    destructiveHint?: boolean;
    idempotentHint?: boolean;
    openWorldHint?: boolean;
  };
}

export interface ToolResult {
  isError: boolean;
  text: string;
  structured: Record<string, unknown> | undefined;
  /** The structured error a Keel server puts in `_meta["keel/error"]`. */
  error: { code: string; message: string; hint?: string; retryable?: boolean } | undefined;
  bytes: number;
}

export interface ConnectedServer {
  name: string;
  /** Which Keel server, or `external`. */
  kind: BuiltinServer | 'external';
  version: string;
  tools: CatalogTool[];
  /** sha256 of the canonical tool list: a replay checks it. */
  toolListHash: string;
  /** The stdio server's process id, when it is one. */
  pid: number | undefined;
  call(
    tool: string,
    args: Record<string, unknown>,
    options: { signal: AbortSignal; timeoutMs: number; meta: Record<string, unknown> },
  ): Promise<ToolResult>;
  /** The last lines the server wrote to stderr, for error reports. */
  stderrTail(): string;
  close(): Promise<void>;
}

const stderrKeep = 16 * 1024;

function readResult(result: {
  isError?: boolean;
  content?: Array<{ type: string; text?: string }>;
  structuredContent?: Record<string, unknown>;
  _meta?: Record<string, unknown>;
}): ToolResult {
  const text = (result.content ?? [])
    .map((part) => (part.type === 'text' ? (part.text ?? '') : `[${part.type} content]`))
    .join('\n');
  const error = result._meta?.['keel/error'] as ToolResult['error'];
  return {
    isError: result.isError === true,
    text,
    structured: result.structuredContent,
    error:
      result.isError === true ? (error ?? { code: 'TOOL_ERROR', message: text.slice(0, 2000) }) : undefined,
    bytes:
      Buffer.byteLength(text) +
      (result.structuredContent ? Buffer.byteLength(JSON.stringify(result.structuredContent)) : 0),
  };
}

/**
 * Connects to one configured server as an MCP client: a Keel server's bin or any command over
 * stdio (started in the workspace, with the task store's server state dir), or a URL over
 * Streamable HTTP. Lists its tools once; the catalogue is fixed for the run.
 */
export async function connectServer(
  name: string,
  config: ServerConfig,
  options: { workspace: string; stateDir: string; env: NodeJS.ProcessEnv },
): Promise<ConnectedServer> {
  const client = new Client({ name: 'keel-supervisor', version: '0.1.0' });
  let stderr = '';
  let pid: number | undefined;
  let kind: ConnectedServer['kind'] = 'external';
  try {
    if ('url' in config) {
      const token = config.tokenEnv === undefined ? undefined : options.env[config.tokenEnv];
      if (config.tokenEnv !== undefined && token === undefined)
        throw new KeelError('INVALID_ARGUMENT', `servers.${name}.tokenEnv: ${config.tokenEnv} is not set`);
      await client.connect(
        new StreamableHTTPClientTransport(
          new URL(config.url),
          token === undefined ? {} : { requestInit: { headers: { authorization: `Bearer ${token}` } } },
        ),
      );
    } else {
      let command: string;
      let args: string[];
      if ('builtin' in config) {
        kind = config.builtin;
        command = process.execPath;
        args = [builtinBinPath(config.builtin), ...config.args];
      } else {
        command = config.command;
        args = config.args;
      }
      const env: Record<string, string> = {};
      for (const [key, value] of Object.entries(options.env)) if (value !== undefined) env[key] = value;
      env['KEEL_STATE_DIR'] ??= path.join(options.stateDir, 'servers');
      const transport = new StdioClientTransport({
        command,
        args,
        env: { ...env, ...config.env },
        cwd:
          'cwd' in config && config.cwd !== undefined
            ? path.resolve(options.workspace, config.cwd)
            : options.workspace,
        stderr: 'pipe',
      });
      transport.stderr?.on('data', (chunk: Buffer) => {
        stderr = (stderr + chunk.toString()).slice(-stderrKeep);
      });
      await client.connect(transport);
      pid = transport.pid ?? undefined;
    }
  } catch (cause) {
    await client.close().catch(() => undefined);
    if (cause instanceof KeelError) throw cause;
    throw new KeelError('UNAVAILABLE', `server '${name}' did not start: ${(cause as Error).message}`, {
      cause,
      hint:
        stderr.trim() === ''
          ? `check servers.${name} in the config`
          : `its stderr ends with:\n${stderr.trim().slice(-2000)}`,
    });
  }
  const listed = await client.listTools();
  const tools: CatalogTool[] = listed.tools.map((tool) => ({
    server: name,
    name: tool.name,
    description: tool.description ?? '',
    inputSchema: tool.inputSchema as Record<string, unknown>,
    annotations: (tool.annotations ?? {}) as CatalogTool['annotations'],
  }));
  const info = client.getServerVersion();
  return {
    name,
    kind,
    version: `${info?.name ?? name}@${info?.version ?? 'unknown'}`,
    tools,
    toolListHash: sha256Hex(canonicalJson(listed.tools)),
    pid,
    async call(tool, args, callOptions) {
      const result = await client.callTool({ name: tool, arguments: args, _meta: callOptions.meta }, {
        signal: callOptions.signal,
        timeout: Math.max(1, callOptions.timeoutMs),
        resetTimeoutOnProgress: false,
      } as never);
      return readResult(result as Parameters<typeof readResult>[0]);
    },
    stderrTail: () => stderr,
    close: () => client.close(),
  };
}

/** Every configured server, connected; closes those already started if one fails. */
export async function connectServers(
  configs: Record<string, ServerConfig>,
  options: { workspace: string; stateDir: string; env: NodeJS.ProcessEnv; only?: ReadonlySet<string> },
): Promise<Map<string, ConnectedServer>> {
  const connected = new Map<string, ConnectedServer>();
  try {
    for (const [name, config] of Object.entries(configs)) {
      if (options.only !== undefined && !options.only.has(name)) continue;
      connected.set(name, await connectServer(name, config, options));
    }
  } catch (error) {
    await Promise.all([...connected.values()].map((s) => s.close().catch(() => undefined)));
    throw error;
  }
  return connected;
}
