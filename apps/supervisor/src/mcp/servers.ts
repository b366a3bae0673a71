import { statSync } from 'node:fs';
import path from 'node:path';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import {
  canonicalJson,
  CHANGES_NO_FILES_META_KEY,
  KeelError,
  PREVIEW_META_KEY,
  sha256Hex,
} from '@keel/kit/core';
import type { ServerConfig } from '../config/schema.js';
import { builtinBinPath, type BuiltinServer } from './builtins.js';

/** A tool as a server listed it. */
export interface CatalogTool {
  server: string;
  name: string;
  description: string;
  inputSchema: Record<string, unknown>;
  /** The tool answers `_meta["keel/preview"]` with its effect (its `tools/list` entry says so). */
  preview?: boolean;
  /**
   * The tool declares it changes no file whatever its input (`_meta["keel/changes-no-files"]`): its
   * effect is known empty without a preview, and its server refuses a real call that would break that.
   */
  changesNoFiles?: boolean;
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
  /** False once the connection has closed (a stdio server's process exited, or close() was called). */
  isOpen(): boolean;
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

const isDirectory = (dir: string) => {
  try {
    return statSync(dir).isDirectory();
  } catch {
    return false;
  }
};

/** How a configured server is reached: the process to start, or the URL to call. */
export type ServerLaunch =
  | {
      transport: 'stdio';
      kind: ConnectedServer['kind'];
      command: string;
      args: string[];
      env: Record<string, string>;
      cwd: string;
    }
  | { transport: 'http'; url: string; headers: Record<string, string> };

export interface ServerOptions {
  workspace: string;
  stateDir: string;
  env: NodeJS.ProcessEnv;
  /** Keel's own files: every built-in server denies them to every tool (`--deny-path`). */
  deny?: readonly string[];
  /** Aborts start-up (a kill while the task's servers start): a server not yet connected is closed, its process with it. */
  signal?: AbortSignal;
}

/**
 * Resolves a server's config into what starts it: a Keel server's bin or any command over stdio
 * (started in the workspace, with the task store's server state dir), or a URL over Streamable HTTP.
 * Two launches that are equal start interchangeable servers.
 */
export function serverLaunch(name: string, config: ServerConfig, options: ServerOptions): ServerLaunch {
  if ('url' in config) {
    const token = config.tokenEnv === undefined ? undefined : options.env[config.tokenEnv];
    if (config.tokenEnv !== undefined && token === undefined)
      throw new KeelError('INVALID_ARGUMENT', `servers.${name}.tokenEnv: ${config.tokenEnv} is not set`);
    return {
      transport: 'http',
      url: config.url,
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    };
  }
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(options.env)) if (value !== undefined) env[key] = value;
  // A crash point of the supervisor's is not the server's to arm (the deploy server refuses names it does not know).
  if (env['KEEL_CRASH_AT']?.startsWith('supervisor.') === true) delete env['KEEL_CRASH_AT'];
  env['KEEL_STATE_DIR'] ??= path.join(options.stateDir, 'servers');
  const cwd =
    'cwd' in config && config.cwd !== undefined
      ? path.resolve(options.workspace, config.cwd)
      : options.workspace;
  // Spawning in a missing directory fails as `spawn node ENOENT`, which blames node: name the directory.
  if (!isDirectory(cwd))
    throw new KeelError(
      'NOT_FOUND',
      cwd === options.workspace
        ? `the workspace ${cwd} does not exist (or is not a directory): server '${name}' starts there`
        : `servers.${name}.cwd: ${cwd} does not exist (or is not a directory)`,
      {
        hint:
          cwd === options.workspace
            ? '`workspace:` in the config names it, relative to the config file: fix the path, or create the project there'
            : `fix servers.${name}.cwd (relative to the workspace)`,
      },
    );
  if ('builtin' in config)
    return {
      transport: 'stdio',
      kind: config.builtin,
      command: process.execPath,
      args: [
        builtinBinPath(config.builtin),
        ...config.args,
        ...(options.deny ?? []).flatMap((file) => ['--deny-path', file]),
      ],
      env: { ...env, ...config.env },
      cwd,
    };
  return {
    transport: 'stdio',
    kind: 'external',
    command: config.command,
    args: config.args,
    env: { ...env, ...config.env },
    cwd,
  };
}

/** Connects to one configured server as an MCP client. Lists its tools once; the catalogue is fixed for the run. */
export async function connectServer(
  name: string,
  config: ServerConfig,
  options: ServerOptions,
): Promise<ConnectedServer> {
  return connectLaunch(name, serverLaunch(name, config, options), options.signal);
}

const stoppedWhileStarting = (name: string, cause: unknown) =>
  new KeelError('CANCELLED', `server '${name}' was stopped while it started: the task was stopped`, {
    cause,
  });

/** Connects to a server by its resolved launch (see `serverLaunch`); `signal` aborts the start-up. */
export async function connectLaunch(
  name: string,
  launch: ServerLaunch,
  signal?: AbortSignal,
): Promise<ConnectedServer> {
  const client = new Client({ name: 'keel-supervisor', version: '0.1.0' });
  let stderr = '';
  let pid: number | undefined;
  let open = true;
  // Closing the client closes its transport: a stdio server's process is ended, and connect rejects.
  const abort = () => void client.close().catch(() => undefined);
  signal?.addEventListener('abort', abort, { once: true });
  try {
    signal?.throwIfAborted();
    if (launch.transport === 'http') {
      await client.connect(
        new StreamableHTTPClientTransport(new URL(launch.url), { requestInit: { headers: launch.headers } }),
      );
    } else {
      const transport = new StdioClientTransport({
        command: launch.command,
        args: launch.args,
        env: launch.env,
        cwd: launch.cwd,
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
    if (signal?.aborted === true) throw stoppedWhileStarting(name, cause);
    throw new KeelError('UNAVAILABLE', `server '${name}' did not start: ${(cause as Error).message}`, {
      cause,
      hint:
        stderr.trim() === ''
          ? `check servers.${name} in the config`
          : `its stderr ends with:\n${stderr.trim().slice(-2000)}`,
    });
  }
  client.onclose = () => {
    open = false;
  };
  let listed;
  try {
    listed = await client.listTools();
  } catch (cause) {
    await client.close().catch(() => undefined);
    if (signal?.aborted === true) throw stoppedWhileStarting(name, cause);
    throw cause;
  } finally {
    signal?.removeEventListener('abort', abort);
  }
  const tools: CatalogTool[] = listed.tools.map((tool) => ({
    server: name,
    name: tool.name,
    description: tool.description ?? '',
    inputSchema: tool.inputSchema as Record<string, unknown>,
    preview: tool._meta?.[PREVIEW_META_KEY] === true,
    changesNoFiles: tool._meta?.[PREVIEW_META_KEY] === true && tool._meta[CHANGES_NO_FILES_META_KEY] === true,
    annotations: (tool.annotations ?? {}) as CatalogTool['annotations'],
  }));
  const info = client.getServerVersion();
  return {
    name,
    kind: launch.transport === 'http' ? 'external' : launch.kind,
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
    isOpen: () => open,
    close: () => client.close(),
  };
}

/**
 * Every configured server, connected — started at once, so a task waits for its slowest server,
 * not for their sum; closes those that started if one fails.
 */
export async function connectServers(
  configs: Record<string, ServerConfig>,
  options: ServerOptions & { only?: ReadonlySet<string> },
): Promise<Map<string, ConnectedServer>> {
  const names = Object.keys(configs).filter((name) => options.only === undefined || options.only.has(name));
  const settled = await Promise.allSettled(names.map((name) => connectServer(name, configs[name]!, options)));
  const failed = settled.find((s) => s.status === 'rejected');
  if (failed !== undefined) {
    await Promise.all(
      settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value.close().catch(() => undefined)] : [])),
    );
    throw failed.reason;
  }
  // In config order, as before: the catalogue takes a tool name from the first server that has it.
  return new Map(
    names.map((name, i) => [name, (settled[i] as PromiseFulfilledResult<ConnectedServer>).value]),
  );
}
