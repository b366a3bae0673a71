import { randomBytes } from 'node:crypto';
import {
  CLIENT_CAPABILITIES_META_KEY,
  isInputRequiredResult,
  ProtocolError,
  ProtocolErrorCode,
  Server,
  type ClientCapabilities,
  type InputRequiredResult,
  type CallToolResult,
  type McpRequestContext,
  type ServerContext,
  type Tool,
} from '@modelcontextprotocol/server';
import type Database from 'better-sqlite3';
import * as z from 'zod';
import { createAuditLog, type SqliteAuditLog } from './audit/auditLog.js';
import { createCursorCodec, type CursorCodec } from './cursor.js';
import { createRequestStateSealer } from './ask.js';
import { createDeadlineWatch } from './deadlines.js';
import { kitDefaults } from './defaults.js';
import { KeelError, toolError } from './errors.js';
import type { AnyTool } from './defineTool.js';
import { processOwner } from './idempotency/owner.js';
import { createSqliteIdempotencyStore } from './idempotency/sqliteStore.js';
import { publishedInputSchema } from './inputSchema.js';
import { CHANGES_NO_FILES_META_KEY, PREVIEW_META_KEY, previewResultSchema } from './preview.js';
import type { PathJail } from './jail.js';
import { lazy } from './lazy.js';
import { createSilentLogger } from './logger.js';
import { noKitCrashPoint } from './crashPoint.js';
import type { CallOptions, CreateServerOptions, IdempotencyOptions, ServerLimits } from './options.js';
import { createProcessGroups } from './processGroups.js';
import { openSqlite } from './stateDir.js';
import { createActiveCalls, errorResult, ToolCall, type PipelineShared } from './toolCall.js';

export type { CallOptions, CreateServerOptions, IdempotencyOptions, ServerLimits } from './options.js';

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
  /** `callTool`, but a tool's question comes back as the input_required result to answer. */
  runCall(name: string, args: unknown, options?: CallOptions): Promise<CallToolResult | InputRequiredResult>;
  listTools(): Tool[];
  /**
   * Refuses new calls, cancels the calls in flight (their handlers see `ctx.signal` abort and their
   * child process groups get SIGTERM), waits up to `graceMs` for them to settle, kills whatever
   * process group is still alive, then releases what the server owns.
   */
  close(options?: { graceMs?: number }): Promise<void>;
}

const defaultLimits: ServerLimits = {
  defaultTimeoutMs: kitDefaults.timeoutMs,
  maxResultBytes: kitDefaults.maxResultBytes,
  previewMaxFiles: kitDefaults.previewMaxFiles,
};
const defaultIdempotency: IdempotencyOptions = {
  leaseMs: kitDefaults.leaseMs,
  ttlMs: kitDefaults.idempotencyTtlHours * 3_600_000,
  waitMs: kitDefaults.waitMs,
};

export {
  ERROR_META_KEY,
  errorResult,
  IDEMPOTENCY_META_KEY,
  IDEMPOTENCY_RESULT_META_KEY,
} from './toolCall.js';

/** Builds a Keel server from tool definitions and the shared state they run against. */
export function createServer(options: CreateServerOptions): KeelServer {
  const limits = { ...defaultLimits, ...options.limits };
  const idem = { ...defaultIdempotency, ...options.idempotency };
  const processes = options.processes ?? createProcessGroups();
  let closing = false;
  const logger = options.logger ?? createSilentLogger();
  // Undefined unless given: the kit then traces through whatever provider a host registers, if any.
  const tracer = options.tracer;
  const owned: Database.Database[] = [];
  const memoryDb = () => {
    const db = openSqlite(':memory:');
    owned.push(db);
    return db;
  };
  let ownAudit: SqliteAuditLog | undefined;
  const auditLog = () => (ownAudit ??= createAuditLog(memoryDb()));
  const audit = options.audit ?? lazy(auditLog);
  // Given neither, both live in one database: a run's result and its audit row commit together.
  const store =
    options.store ??
    lazy(() =>
      options.audit === undefined
        ? createSqliteIdempotencyStore(auditLog().database, { audit: auditLog() })
        : createSqliteIdempotencyStore(memoryDb()),
    );
  const secret = options.cursorSecret ?? randomBytes(32);
  const cursors: CursorCodec = createCursorCodec(secret);
  const owner = processOwner();
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
      inputSchema: publishedInputSchema(tool.inputSchema),
      outputSchema: publishedOutputSchema(tool),
      annotations: { ...tool.annotations },
      ...(tool.spec.plan === undefined
        ? {}
        : {
            _meta: {
              [PREVIEW_META_KEY]: true,
              ...(tool.spec.changesNoFiles === true ? { [CHANGES_NO_FILES_META_KEY]: true } : {}),
            },
          }),
    })));

  const inFlight = new Set<Promise<unknown>>();
  const active = createActiveCalls();
  const reap = () => {
    store.reap().catch((error: unknown) => logger.error('idempotency reap failed', { error }));
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
    processes,
    sealer: createRequestStateSealer(secret),
    now: options.now ?? Date.now,
    prepare: options.prepare,
    crashPoint: options.crashPoint ?? noKitCrashPoint,
  };

  async function callTool(name: string, rawArgs: unknown, call: CallOptions = {}): Promise<CallToolResult> {
    const result = await runCall(name, rawArgs, call);
    // In-process callers get input_required only when they said they can answer (`asking.canElicit`).
    return isInputRequiredResult(result)
      ? errorResult(
          toolError('CONFIRMATION_REQUIRED', `${name} asks a question this caller cannot answer`, {
            hint: 'Pass asking: { canElicit: true, ... } and answer through runCall, or use a client that supports elicitation.',
          }),
        )
      : result;
  }

  async function runCall(
    name: string,
    rawArgs: unknown,
    call: CallOptions = {},
  ): Promise<CallToolResult | InputRequiredResult> {
    const tool = tools.get(name);
    if (tool === undefined) {
      throw new ProtocolError(ProtocolErrorCode.InvalidParams, `Unknown tool: ${name}`, {
        code: 'INVALID_ARGUMENT',
        hint: `Available tools: ${[...tools.keys()].join(', ')}.`,
      });
    }
    if (closing) {
      return errorResult(
        toolError('UNAVAILABLE', `${options.name} is shutting down`, {
          hint: 'Retry the call once the server is back.',
        }),
      );
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
      const capabilities =
        ((ctx.mcpReq.envelope as Record<string, unknown> | undefined)?.[CLIENT_CAPABILITIES_META_KEY] as
          ClientCapabilities | undefined) ?? server.getClientCapabilities();
      const requestState = ctx.mcpReq.requestState();
      return await runCall(request.params.name, request.params.arguments, {
        asking: {
          canElicit: canElicitForm(capabilities),
          inputResponses: ctx.mcpReq.inputResponses,
          requestState: typeof requestState === 'string' ? requestState : undefined,
        },
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
    runCall,
    listTools,
    async close(closeOptions = {}) {
      closing = true;
      clearInterval(reaper);
      active.abortAll(new KeelError('CANCELLED', `${options.name} is shutting down; the call was cancelled`));
      deadlines.close();
      const settled = () => Promise.allSettled([active.idle(), ...inFlight]);
      const graceMs = closeOptions.graceMs ?? kitDefaults.shutdownGraceMs;
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise((resolve) => (timer = setTimeout(resolve, graceMs)));
      await Promise.race([settled(), grace]);
      clearTimeout(timer);
      // A child that ignored SIGTERM, or a handler that did not stop in time: the group dies now.
      if (processes.killAll('SIGKILL') > 0) {
        const reaped = new Promise((resolve) => (timer = setTimeout(resolve, 1_000)));
        await Promise.race([Promise.allSettled([settled(), processes.empty()]), reaped]);
        clearTimeout(timer);
      }
      for (const db of owned) db.close();
    },
  };
}

/**
 * The output schema published in tools/list. A tool that can preview answers either its own result
 * or `{ preview }`, and clients check structured content against this schema, so it offers both:
 * one object (MCP wants `type: "object"` at the top) with the two shapes as `anyOf`.
 */
function publishedOutputSchema(tool: AnyTool): NonNullable<Tool['outputSchema']> {
  const own = z.toJSONSchema(tool.spec.output, { io: 'output' }) as Record<string, unknown>;
  if (tool.spec.plan === undefined) return own as NonNullable<Tool['outputSchema']>;
  const { $schema, ...result } = own;
  const { $schema: _previewSchema, ...preview } = z.toJSONSchema(previewResultSchema, {
    io: 'output',
  }) as Record<string, unknown>;
  return { $schema, type: 'object', anyOf: [result, preview] } as NonNullable<Tool['outputSchema']>;
}

/** Form-mode elicitation: an `elicitation` capability with `form`, or an empty one (the 2025 default). */
function canElicitForm(capabilities: ClientCapabilities | undefined): boolean {
  const elicitation = capabilities?.elicitation as Record<string, unknown> | undefined;
  if (elicitation === undefined) return false;
  return elicitation['form'] !== undefined || Object.keys(elicitation).length === 0;
}
