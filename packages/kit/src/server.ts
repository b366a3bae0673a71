import { randomUUID } from 'node:crypto';
import type { Tracer } from '@opentelemetry/api';
import {
  ProtocolError,
  ProtocolErrorCode,
  Server,
  type CallToolResult,
  type McpRequestContext,
  type ServerContext,
  type Tool,
} from '@modelcontextprotocol/server';
import type Database from 'better-sqlite3';
import * as z from 'zod';
import type { RedactOptions } from './audit/redact.js';
import { createAuditLog, type AuditLog } from './audit/auditLog.js';
import { createCursorCodec, type CursorCodec } from './cursor.js';
import { createDeadlineWatch } from './deadlines.js';
import type { AnyTool } from './defineTool.js';
import { createSqliteIdempotencyStore } from './idempotency/sqliteStore.js';
import type { IdempotencyStore } from './idempotency/store.js';
import type { PathJail } from './jail.js';
import { lazy } from './lazy.js';
import { createSilentLogger, type Logger } from './logger.js';
import { openSqlite } from './stateDir.js';
import { createActiveCalls, ToolCall, type PipelineShared } from './toolCall.js';

export interface ServerLimits {
  /** Per-call time limit unless a tool sets its own. */
  defaultTimeoutMs: number;
  /** The last guard on a result's size; a tool's own budgets should keep far below it. */
  maxResultBytes: number;
}

export interface IdempotencyOptions {
  /** How long a claim stays valid without a heartbeat; a dead process's claim is recovered after it. */
  leaseMs: number;
  /** How long a completed result is kept for retries. */
  ttlMs: number;
  /** How long a concurrent duplicate waits for the first call before IN_PROGRESS. */
  waitMs: number;
}

export interface CreateServerOptions {
  name: string;
  version: string;
  title?: string;
  instructions?: string;
  tools: readonly AnyTool[];
  jail: PathJail;
  /** Defaults to an in-memory SQLite store: idempotent within the process only. */
  store?: IdempotencyStore;
  /** Defaults to an in-memory log. */
  audit?: AuditLog;
  /** Signs cursors; pass the state dir's secret so cursors survive restarts and replicas. */
  cursorSecret?: Uint8Array;
  tracer?: Tracer;
  logger?: Logger;
  limits?: Partial<ServerLimits>;
  idempotency?: Partial<IdempotencyOptions>;
  redact?: RedactOptions;
}

export interface CallOptions {
  meta?: Record<string, unknown>;
  signal?: AbortSignal;
  requestId?: string | number;
  sessionId?: string;
  /** The jail for this call when narrower than the server's (client roots). */
  jail?: PathJail;
  /** Delivers a progress notification; the call's result waits for these so none arrives after it. */
  onProgress?: (progress: { progress: number; total?: number; message?: string }) => Promise<void> | void;
}

/**
 * A Keel server: tools behind the kit's pipeline. It makes an SDK server per connection (stdio) or
 * per request (Streamable HTTP) through `createMcpServer`, and `callTool` runs the same pipeline
 * in-process for library use.
 */
export interface KeelServer {
  readonly name: string;
  readonly version: string;
  readonly tools: readonly AnyTool[];
  readonly jail: PathJail;
  createMcpServer(context?: Partial<McpRequestContext>): Server;
  callTool(name: string, args: unknown, options?: CallOptions): Promise<CallToolResult>;
  listTools(): Tool[];
  /** Waits for calls in flight (bounded), then releases what the server owns. */
  close(options?: { graceMs?: number }): Promise<void>;
}

const defaults: ServerLimits & IdempotencyOptions = {
  defaultTimeoutMs: 120_000,
  maxResultBytes: 4 * 1024 * 1024,
  leaseMs: 30_000,
  ttlMs: 24 * 60 * 60 * 1000,
  waitMs: 30_000,
};

export {
  ERROR_META_KEY,
  errorResult,
  IDEMPOTENCY_META_KEY,
  IDEMPOTENCY_RESULT_META_KEY,
} from './toolCall.js';

/** Builds a Keel server from tool definitions and the shared state they run against. */
export function createServer(options: CreateServerOptions): KeelServer {
  const limits = { ...defaults, ...options.limits };
  const idem = { ...defaults, ...options.idempotency };
  const logger = options.logger ?? createSilentLogger();
  // Undefined unless given: the kit then traces through whatever provider a host registers, if any.
  const tracer = options.tracer;
  const owned: Database.Database[] = [];
  const memoryDb = () => {
    const db = openSqlite(':memory:');
    owned.push(db);
    return db;
  };
  const store = options.store ?? lazy(() => createSqliteIdempotencyStore(memoryDb()));
  const audit = options.audit ?? lazy(() => createAuditLog(memoryDb()));
  const cursors: CursorCodec = createCursorCodec(options.cursorSecret);
  const owner = `${process.pid}:${randomUUID().slice(0, 8)}`;
  const deadlines = createDeadlineWatch();

  const tools = new Map<string, AnyTool>();
  for (const tool of options.tools) {
    if (tools.has(tool.spec.name)) throw new TypeError(`two tools are named '${tool.spec.name}'`);
    tools.set(tool.spec.name, tool);
  }
  // Converted to JSON Schema on the first tools/list, not at start: a stdio server's cold start is
  // on the client's critical path, and the conversion is most of a many-tool server's start-up.
  let toolList: Tool[] | undefined;
  const listTools = (): Tool[] =>
    (toolList ??= [...tools.values()].map((tool) => ({
      name: tool.spec.name,
      title: tool.spec.title,
      description: tool.spec.description,
      inputSchema: z.toJSONSchema(tool.inputSchema, { io: 'input' }) as Tool['inputSchema'],
      outputSchema: z.toJSONSchema(tool.spec.output, { io: 'output' }) as NonNullable<Tool['outputSchema']>,
      annotations: { ...tool.annotations },
    })));

  const inFlight = new Set<Promise<unknown>>();
  const active = createActiveCalls();
  const reap = () => {
    try {
      store.reap();
    } catch (error) {
      logger.error('idempotency reap failed', { error });
    }
  };
  // Expired records are also ignored by claim; reaping only keeps the file from growing. The store
  // reaps when it opens; this catches long-running servers.
  const reaper = setInterval(reap, 60 * 60 * 1000);
  reaper.unref();

  const shared: PipelineShared = {
    server: options.name,
    limits,
    idempotency: idem,
    logger,
    tracer,
    store,
    audit,
    cursors,
    redact: options.redact,
    owner,
    jail: options.jail,
    deadlines,
    waiters: new Map(),
    active,
    inFlight,
  };

  async function callTool(name: string, rawArgs: unknown, call: CallOptions = {}): Promise<CallToolResult> {
    const tool = tools.get(name);
    if (tool === undefined) {
      throw new ProtocolError(ProtocolErrorCode.InvalidParams, `Unknown tool: ${name}`, {
        code: 'INVALID_ARGUMENT',
        hint: `Available tools: ${[...tools.keys()].join(', ')}.`,
      });
    }
    return await new ToolCall(shared, tool, call).run(rawArgs ?? {});
  }

  function createMcpServer(): Server {
    const server = new Server(
      {
        name: options.name,
        version: options.version,
        ...(options.title === undefined ? {} : { title: options.title }),
      },
      {
        capabilities: { tools: { listChanged: false } },
        ...(options.instructions === undefined ? {} : { instructions: options.instructions }),
      },
    );
    // Client roots may narrow the jail for this connection; they never widen it.
    let connectionJail: Promise<PathJail> | undefined;
    const refreshRoots = () => {
      connectionJail = server
        .listRoots()
        .then((result) => {
          // Clients that support roots but have none configured (the Inspector CLI among them)
          // send an empty list; narrowing to nothing would refuse every path, so it narrows nothing.
          if (result.roots.length === 0) {
            logger.info('client sent an empty roots list; the server roots stay in force');
            return options.jail;
          }
          return options.jail.narrow(result.roots.map((root) => root.uri));
        })
        .catch((error: unknown) => {
          logger.warn('client roots could not be read; using the server roots', {
            reason: (error as Error).message,
          });
          return options.jail;
        });
    };
    server.oninitialized = () => {
      if (server.getClientCapabilities()?.roots !== undefined) refreshRoots();
    };
    server.setNotificationHandler('notifications/roots/list_changed', () => refreshRoots());
    server.setRequestHandler('tools/list', () => ({ tools: listTools() }));
    server.setRequestHandler('tools/call', async (request, ctx: ServerContext) => {
      const progressToken = request.params._meta?.progressToken;
      const jail = connectionJail === undefined ? undefined : await connectionJail;
      return await callTool(request.params.name, request.params.arguments, {
        signal: ctx.mcpReq.signal,
        requestId: ctx.mcpReq.id,
        ...(ctx.mcpReq._meta === undefined ? {} : { meta: ctx.mcpReq._meta as Record<string, unknown> }),
        ...(ctx.sessionId === undefined ? {} : { sessionId: ctx.sessionId }),
        ...(jail === undefined ? {} : { jail }),
        ...(progressToken === undefined
          ? {}
          : {
              onProgress: (progress) =>
                ctx.mcpReq
                  .notify({ method: 'notifications/progress', params: { progressToken, ...progress } })
                  .catch((error: unknown) => logger.debug('progress notification dropped', { error })),
            }),
      });
    });
    return server;
  }

  return {
    name: options.name,
    version: options.version,
    tools: options.tools,
    jail: options.jail,
    createMcpServer,
    callTool,
    listTools,
    async close(closeOptions = {}) {
      clearInterval(reaper);
      deadlines.close();
      const grace = new Promise((resolve) => setTimeout(resolve, closeOptions.graceMs ?? 5000).unref());
      await Promise.race([Promise.allSettled([active.idle(), ...inFlight]), grace]);
      for (const db of owned) db.close();
    },
  };
}
