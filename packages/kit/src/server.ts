import { randomUUID } from 'node:crypto';
import { isSpanContextValid, trace, type Tracer } from '@opentelemetry/api';
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
import { redact, type RedactOptions } from './audit/redact.js';
import type { AuditLog } from './audit/auditLog.js';
import { createAuditLog } from './audit/auditLog.js';
import { createCallAbort, type CallAbort } from './abort.js';
import { CallContext } from './callContext.js';
import { createDeadlineWatch } from './deadlines.js';
import { lazy } from './lazy.js';
import { openSqlite } from './stateDir.js';
import { callFingerprint, canonicalJson, sha256Hex } from './canonical.js';
import { createCursorCodec, type CursorCodec } from './cursor.js';
import type { AnyTool, Reconciled, ToolContext } from './defineTool.js';
import { fail, KeelError, ok, toolError, toToolError, type Outcome, type ToolError } from './errors.js';
import { createSqliteIdempotencyStore } from './idempotency/sqliteStore.js';
import type { IdempotencyStore } from './idempotency/store.js';
import type { PathJail, ResolvedPath } from './jail.js';
import { createSilentLogger, type Logger } from './logger.js';
import { endToolSpan, SpanAttributes, startToolSpan, withContext } from './telemetry.js';

/** The `_meta` key a caller (the supervisor) puts its idempotency key under. */
export const IDEMPOTENCY_META_KEY = 'keel/idempotency-key';
/** The `_meta` key of a failed result's structured error. */
export const ERROR_META_KEY = 'keel/error';
/** The `_meta` key describing what the idempotency store did with a call. */
export const IDEMPOTENCY_RESULT_META_KEY = 'keel/idempotency';

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

/** Builds a Keel server from tool definitions and the shared state they run against. */
export function createServer(options: CreateServerOptions): KeelServer {
  const limits = { ...defaults, ...options.limits };
  const idem = { ...defaults, ...options.idempotency };
  const logger = options.logger ?? createSilentLogger();
  const tracer = options.tracer ?? trace.getTracer('@keel/kit');
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

  // In-process waiters for a key another call of this process is running.
  const waiters = new Map<string, Set<() => void>>();
  const wake = (key: string) => {
    const set = waiters.get(key);
    waiters.delete(key);
    for (const resolve of set ?? []) resolve();
  };
  const inFlight = new Set<Promise<unknown>>();
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

  async function callTool(name: string, rawArgs: unknown, call: CallOptions = {}): Promise<CallToolResult> {
    const tool = tools.get(name);
    if (tool === undefined) {
      throw new ProtocolError(ProtocolErrorCode.InvalidParams, `Unknown tool: ${name}`, {
        code: 'INVALID_ARGUMENT',
        hint: `Available tools: ${[...tools.keys()].join(', ')}.`,
      });
    }
    const run = runPipeline(tool, rawArgs ?? {}, call);
    inFlight.add(run);
    try {
      return await run;
    } finally {
      inFlight.delete(run);
    }
  }

  async function runPipeline(tool: AnyTool, rawArgs: unknown, call: CallOptions): Promise<CallToolResult> {
    const spec = tool.spec;
    const mutating = spec.effect !== 'read';
    const { span, context } = startToolSpan({
      tracer,
      server: options.name,
      tool: spec.name,
      effect: spec.effect,
      requestId: call.requestId ?? 'local',
      sessionId: call.sessionId,
      meta: call.meta,
    });
    const traceId = span.spanContext().traceId;
    let idempotencyOutcome = 'none';
    let errorCode: string | undefined;
    let errorMessage: string | undefined;

    try {
      const parsed = tool.inputSchema.safeParse(rawArgs);
      if (!parsed.success) {
        errorCode = 'INVALID_ARGUMENT';
        errorMessage = z.prettifyError(parsed.error);
        throw new ProtocolError(
          ProtocolErrorCode.InvalidParams,
          `Invalid arguments for tool ${spec.name}: ${errorMessage}`,
          {
            code: 'INVALID_ARGUMENT',
            issues: parsed.error.issues.map((issue) => ({
              path: issue.path.map(String),
              message: issue.message,
            })),
          },
        );
      }
      const { idempotencyKey: argKey, ...input } = parsed.data as Record<string, unknown> & {
        idempotencyKey?: string;
      };
      const metaKey = call.meta?.[IDEMPOTENCY_META_KEY];
      // The last rendered result and its size, so the span does not serialise it a second time.
      let rendered: { result: CallToolResult; bytes: number } | undefined;

      const finish = (
        result: CallToolResult,
        outcome: Outcome<unknown>,
        replayed: boolean,
        key: string | undefined,
      ) => {
        const bytes =
          rendered?.result === result ? rendered.bytes : Buffer.byteLength(JSON.stringify(result));
        span.setAttribute(SpanAttributes.resultBytes, bytes);
        span.setAttribute(SpanAttributes.idempotencyOutcome, idempotencyOutcome);
        const truncated =
          outcome.ok &&
          typeof outcome.value === 'object' &&
          outcome.value !== null &&
          'truncated' in outcome.value;
        span.setAttribute(SpanAttributes.resultTruncated, truncated);
        if (!outcome.ok) {
          errorCode = outcome.error.code;
          errorMessage = outcome.error.message;
        }
        if (mutating) {
          try {
            audit.append({
              server: options.name,
              tool: spec.name,
              args: redact(input, options.redact),
              outcome: replayed ? 'replayed' : outcome.ok ? 'ok' : 'error',
              errorCode: outcome.ok ? undefined : outcome.error.code,
              idempotencyKey: key,
              resultSha256: sha256Hex(canonicalJson(result)),
              traceId,
            });
          } catch (error) {
            // The effect already happened; the caller gets its result and the failure is loud in the log.
            logger.error('audit append failed', { tool: spec.name, error });
            span.setAttribute('keel.audit.failed', true);
          }
        }
        return result;
      };

      if (typeof metaKey === 'string' && argKey !== undefined && metaKey !== argKey) {
        return finish(
          ...errorPair(
            toolError(
              'INVALID_ARGUMENT',
              'two different idempotency keys were sent (in _meta and in the idempotencyKey argument)',
              {
                hint: 'Send the key once: the argument or _meta["keel/idempotency-key"].',
              },
            ),
          ),
          false,
          undefined,
        );
      }
      const key = mutating
        ? typeof metaKey === 'string' && metaKey.length > 0
          ? metaKey
          : argKey
        : undefined;

      // Resolve declared paths before anything runs: an escape is refused without touching the store.
      const jail = call.jail ?? options.jail;
      const resolved =
        spec.paths === undefined ? undefined : new Map<string, ResolvedPath | ResolvedPath[]>();
      for (const [field, mode] of Object.entries(spec.paths ?? {})) {
        const value = input[field];
        if (value === undefined) continue;
        const values = Array.isArray(value) ? (value as unknown[]) : [value];
        const out: ResolvedPath[] = [];
        for (const item of values) {
          const result = await jail.resolve(String(item));
          if (!result.ok) return finish(...errorPair(withField(result.error, field)), false, key);
          if (mode === 'existing' && !result.value.exists) {
            return finish(
              ...errorPair(
                toolError('NOT_FOUND', `${field} '${String(item)}' does not exist`, {
                  hint: 'Check the path; list the parent directory to see what is there.',
                  details: { field, path: String(item) },
                }),
              ),
              false,
              key,
            );
          }
          out.push(result.value);
        }
        resolved?.set(field, Array.isArray(value) ? out : out[0]!);
      }

      const abort = createCallAbort();
      const timeoutMs = spec.timeoutMs ?? limits.defaultTimeoutMs;
      const onCallerAbort = () =>
        abort.abort(new KeelError('CANCELLED', `${spec.name} was cancelled by the client`));
      call.signal?.addEventListener('abort', onCallerAbort, { once: true });
      if (call.signal?.aborted) onCallerAbort();
      const deadline = deadlines.add(Date.now() + timeoutMs, () =>
        abort.abort(
          new KeelError('TIMEOUT', `${spec.name} did not finish within ${timeoutMs} ms`, {
            hint: 'Narrow the request (fewer files, a smaller range) or raise the timeout.',
          }),
        ),
      );

      const ctx = new CallContext({
        server: options.name,
        spec,
        input,
        jail,
        idempotencyKey: key,
        resolved,
        abort,
        cursors,
        logger,
        onProgress: call.onProgress,
      });

      const execute = async (): Promise<Outcome<unknown>> => {
        try {
          // With tracing off and no caller trace the span context is invalid and there is nothing to
          // propagate; entering the context API then costs more than the rest of the pipeline.
          return await (isSpanContextValid(span.spanContext())
            ? withContext(context, () => spec.handler(input, ctx))
            : spec.handler(input, ctx));
        } catch (error) {
          if (!(error instanceof KeelError)) logger.error('tool handler threw', { tool: spec.name, error });
          return { ok: false, error: toToolError(error) };
        } finally {
          if (ctx.pendingProgress !== undefined) await Promise.allSettled(ctx.pendingProgress);
        }
      };
      const render = (outcome: Outcome<unknown>): CallToolResult => {
        rendered = renderResult(tool, outcome, limits.maxResultBytes);
        return rendered.result;
      };

      // Answer with whichever comes first: the handler, or the abort (cancel/timeout). The handler keeps
      // its claim until it settles, so a retry never runs the effect alongside a still-running first call.
      // The listener is removed as soon as the work settles: left in place it kept every finished
      // call's objects reachable from the abort state, and the kit's per-call cost tripled in GC.
      const raceAbort = (work: Promise<Outcome<unknown>>): Promise<Outcome<unknown>> =>
        new Promise((resolve) => {
          const onAbort = (reason: KeelError) => resolve({ ok: false, error: toToolError(reason) });
          abort.onAbort(onAbort);
          work.then(
            (outcome) => {
              abort.offAbort(onAbort);
              resolve(outcome);
            },
            (error: unknown) => {
              abort.offAbort(onAbort);
              resolve({ ok: false, error: toToolError(error) });
            },
          );
        });

      try {
        if (key === undefined) {
          const outcome = await raceAbort(execute());
          return finish(render(outcome), outcome, false, undefined);
        }

        const fingerprint = callFingerprint(options.name, spec.name, input);
        const scope = options.name;
        const deadline = Date.now() + idem.waitMs;
        for (let delay = 5; ; delay = Math.min(delay * 2, 200)) {
          const claim = store.claim({
            scope,
            key,
            fingerprint,
            owner,
            leaseMs: idem.leaseMs,
            ttlMs: idem.ttlMs,
          });
          switch (claim.kind) {
            case 'completed': {
              idempotencyOutcome = 'replayed';
              const stored = claim.result as CallToolResult;
              const replay: CallToolResult = {
                ...stored,
                _meta: {
                  ...stored._meta,
                  [IDEMPOTENCY_RESULT_META_KEY]: {
                    key,
                    replayed: true,
                    completedAt: new Date(claim.completedAt).toISOString(),
                  },
                },
              };
              return finish(
                replay,
                stored.isError
                  ? {
                      ok: false,
                      error:
                        (stored._meta?.[ERROR_META_KEY] as ToolError) ??
                        toolError('INTERNAL', 'stored error'),
                    }
                  : ok(stored.structuredContent),
                true,
                key,
              );
            }
            case 'conflict': {
              idempotencyOutcome = 'conflict';
              const error = toolError(
                'IDEMPOTENCY_KEY_REUSED',
                `idempotency key '${key}' was already used for ${spec.name} with different arguments`,
                {
                  hint: 'Use a new key for a different call; reuse a key only to retry the exact same call.',
                },
              );
              return finish(...errorPair(error), false, key);
            }
            case 'in_progress': {
              if (Date.now() >= deadline || abort.reason !== undefined) {
                idempotencyOutcome = 'in_progress';
                const error = toolError(
                  'IN_PROGRESS',
                  `a call with idempotency key '${key}' is still running`,
                  {
                    hint: 'Retry the same call shortly to get its result.',
                    details: {
                      owner: claim.owner,
                      leaseExpiresAt: new Date(claim.leaseExpiresAt).toISOString(),
                    },
                  },
                );
                return finish(...errorPair(error), false, key);
              }
              await waitFor(key, Math.min(delay, Math.max(1, deadline - Date.now())), waiters, abort);
              continue;
            }
            case 'claimed':
            case 'recovered': {
              const token = claim.token;
              const heartbeat = setInterval(
                () => {
                  try {
                    if (!store.renew(scope, key, token, idem.leaseMs))
                      logger.warn('idempotency lease lost', { tool: spec.name, key });
                  } catch (error) {
                    logger.error('idempotency lease renewal failed', { tool: spec.name, key, error });
                  }
                },
                Math.max(50, Math.floor(idem.leaseMs / 3)),
              );
              heartbeat.unref();

              let work: Promise<Outcome<unknown>>;
              if (claim.kind === 'recovered') {
                idempotencyOutcome = 'recovered';
                logger.warn('recovering an interrupted call', {
                  tool: spec.name,
                  key,
                  previousOwner: claim.previousOwner,
                });
                work = recover(spec, input, ctx, execute);
              } else {
                idempotencyOutcome = 'executed';
                work = execute();
              }
              const settled = work.then((outcome) => {
                clearInterval(heartbeat);
                try {
                  if (!outcome.ok && outcome.error.retryable) store.release(scope, key, token);
                  else store.complete(scope, key, token, render(outcome));
                } catch (error) {
                  logger.error('idempotency store write failed', { tool: spec.name, key, error });
                }
                wake(key);
                return outcome;
              });
              inFlight.add(settled);
              void settled.finally(() => inFlight.delete(settled));
              const outcome = await raceAbort(settled);
              return finish(render(outcome), outcome, false, key);
            }
            default:
              return assertNever(claim);
          }
        }
      } finally {
        deadlines.remove(deadline);
        call.signal?.removeEventListener('abort', onCallerAbort);
      }
    } catch (error) {
      if (error instanceof ProtocolError) throw error;
      const toolErr = toToolError(error);
      errorCode = toolErr.code;
      errorMessage = toolErr.message;
      logger.error('tool pipeline failed', { tool: spec.name, error });
      return errorPair(toolErr)[0];
    } finally {
      endToolSpan(span, { errorCode, message: errorMessage });
    }
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
      await Promise.race([Promise.allSettled(inFlight), grace]);
      for (const db of owned) db.close();
    },
  };
}

async function recover(
  spec: AnyTool['spec'],
  input: Record<string, unknown>,
  ctx: ToolContext,
  execute: () => Promise<Outcome<unknown>>,
): Promise<Outcome<unknown>> {
  if (spec.reconcile === undefined) {
    if (spec.idempotent === true) return await execute();
    return fail(
      'CONFLICT',
      `an earlier ${spec.name} call with this idempotency key was interrupted and its outcome cannot be determined`,
      {
        hint: 'Inspect the current state, then retry with a new idempotency key if the change is still needed.',
      },
    );
  }
  let reconciled: Reconciled<unknown>;
  try {
    reconciled = await spec.reconcile(input, ctx);
  } catch (error) {
    return { ok: false, error: toToolError(error) };
  }
  switch (reconciled.status) {
    case 'done':
      return ok(reconciled.value);
    case 'failed':
      return { ok: false, error: reconciled.error };
    case 'not_done':
      return await execute();
    default:
      return assertNever(reconciled);
  }
}

function waitFor(
  key: string,
  ms: number,
  waiters: Map<string, Set<() => void>>,
  abort: CallAbort,
): Promise<void> {
  return new Promise((resolve) => {
    let set = waiters.get(key);
    if (set === undefined) waiters.set(key, (set = new Set()));
    const done = () => {
      clearTimeout(timer);
      set.delete(done);
      abort.offAbort(done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    set.add(done);
    abort.onAbort(done);
  });
}

function withField(error: ToolError, field: string): ToolError {
  return { ...error, details: { ...error.details, field } };
}

function errorPair(error: ToolError): [CallToolResult, Outcome<unknown>] {
  return [errorResult(error), { ok: false, error }];
}

/** A failed call as MCP carries it: isError, a readable text, and the structured error in `_meta`. */
export function errorResult(error: ToolError): CallToolResult {
  const lines = [`Error [${error.code}]: ${error.message}`];
  if (error.hint !== undefined) lines.push(`Hint: ${error.hint}`);
  lines.push(`Retryable: ${error.retryable ? 'yes' : 'no'}`);
  if (error.details !== undefined) {
    const details = JSON.stringify(error.details);
    lines.push(`Details: ${details.length > 2000 ? `${details.slice(0, 2000)}…` : details}`);
  }
  // The error is not put in structuredContent: clients validate that against the tool's output schema.
  return {
    isError: true,
    content: [{ type: 'text', text: lines.join('\n') }],
    _meta: { [ERROR_META_KEY]: error },
  };
}

function renderResult(
  tool: AnyTool,
  outcome: Outcome<unknown>,
  maxResultBytes: number,
): { result: CallToolResult; bytes: number } {
  const failed = (error: ToolError) => {
    const result = errorResult(error);
    return { result, bytes: Buffer.byteLength(JSON.stringify(result)) };
  };
  if (!outcome.ok) return failed(outcome.error);
  const checked = tool.spec.output.safeParse(outcome.value);
  if (!checked.success) {
    return failed(
      toolError(
        'INTERNAL',
        `${tool.spec.name} produced a result that does not match its output schema: ${z.prettifyError(checked.error)}`,
        { hint: 'This is a bug in the tool; report it with the arguments used.' },
      ),
    );
  }
  const value = checked.data as Record<string, unknown>;
  const text = tool.spec.render === undefined ? JSON.stringify(value) : tool.spec.render(value);
  const result: CallToolResult = { content: [{ type: 'text', text }], structuredContent: value };
  const bytes = Buffer.byteLength(JSON.stringify(result));
  if (bytes > maxResultBytes) {
    return failed(
      toolError(
        'RESOURCE_LIMIT',
        `${tool.spec.name} produced ${bytes} bytes, over the server's hard cap of ${maxResultBytes}`,
        { hint: 'Ask for less: a smaller budget argument, a narrower path or range.' },
      ),
    );
  }
  return { result, bytes };
}

function assertNever(value: never): never {
  throw new KeelError('INTERNAL', `unexpected value ${JSON.stringify(value)}`);
}
