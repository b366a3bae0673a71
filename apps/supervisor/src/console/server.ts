import { readFileSync, existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { KeelError } from '@keel/kit/core';
import { taskStatuses } from '@keel/contracts';
import { formatIssues, type LoadedConfig } from '../config/load.js';
import { limitsSchema, type Limits } from '../config/schema.js';
import {
  abortEscalation,
  approveCall,
  continueEscalation,
  denyCall,
  liftGlobalStop,
  refuseUnderChangedConfig,
} from '../control/decisions.js';
import { killAll, killTask } from '../control/kill.js';
import { resumeTask, type RunTaskOptions } from '../engine/runTask.js';
import { listEvalReports, readEvalReport } from '../eval/reports.js';
import { parseSince, readStats } from '../observe/stats.js';
import type { ProgressEvent } from '../engine/session.js';
import type { TaskStore } from '../store/taskStore.js';
import type { Clock } from '../clock.js';
import { accessCookie, createGuards, isLoopback } from './security.js';
import { fingerprint, listApprovalsView, listRuns, modelCallDetail, runDetail } from './views.js';

export interface ConsoleOptions {
  loaded: LoadedConfig;
  store: TaskStore;
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** The login token, checked on every request, loopback included (KEEL_CONSOLE_TOKEN, or one made at start). */
  token: string;
  /** What a task resumed here runs with: the same wiring as `keel approve` gives it. */
  runOptions: Pick<RunTaskOptions, 'env' | 'kill' | 'tracer' | 'killSignals'> & { clock: Clock };
  /** The built front end (dist/console-ui). */
  staticDir?: string;
  /** How often the store is looked at for changes while a page listens (one query for all pages). */
  watchMs?: number;
}

export interface ConsoleServer {
  url: string;
  close(): Promise<void>;
}

const defaultStatic = fileURLToPath(new URL('../console-ui/', import.meta.url));

const types: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

const name = z.string().trim().min(1, 'a name is required').max(100);
const limitNames = Object.keys(limitsSchema.shape).join(', ');
/** What each state-changing request takes, and the hint a malformed one is answered with. */
const bodies = {
  approve: {
    schema: z.object({ by: name, reason: z.string().trim().max(2000).optional() }).strict(),
    hint: 'send {"by": "your name", "reason": "why (optional)"}',
  },
  deny: {
    schema: z
      .object({ by: name, reason: z.string().trim().min(1, 'a reason is required').max(2000) })
      .strict(),
    hint: 'send {"by": "your name", "reason": "why (recorded, and the task ends with it)"}',
  },
  continue: {
    schema: z
      .object({
        by: name,
        raise: limitsSchema.partial().default({}),
        hint: z.string().trim().min(1).max(4000).optional(),
      })
      .strict(),
    hint: `send {"by": "your name", "raise": {"LIMIT": NUMBER}, "hint": "a message for the agent"}; limits: ${limitNames}`,
  },
  abort: {
    schema: z
      .object({ by: name, reason: z.string().trim().min(1, 'a reason is required').max(2000) })
      .strict(),
    hint: 'send {"by": "your name", "reason": "why (recorded)"}',
  },
  kill: {
    schema: z.object({ by: name }).strict(),
    hint: 'send {"by": "your name"}',
  },
};

const statusOf: Partial<Record<string, number>> = {
  NOT_FOUND: 404,
  INVALID_ARGUMENT: 400,
  CONFLICT: 409,
  PRECONDITION_FAILED: 409,
  PERMISSION_DENIED: 403,
};

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly hint: string | null = null,
  ) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 65_536) throw new HttpError(413, 'the request body is over 64 KiB');
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  } catch {
    throw new HttpError(400, 'the request body is not JSON');
  }
}

function parse<TSchema extends z.ZodType>(
  body: { schema: TSchema; hint: string },
  value: unknown,
): z.infer<TSchema> {
  const result = body.schema.safeParse(value);
  if (!result.success) throw new HttpError(400, formatIssues(result.error.issues).join('; '), body.hint);
  return result.data;
}

/**
 * `keel console`: the web console's HTTP server. It reads the task store and calls the same
 * operations as the CLI (control/decisions.ts, control/kill.ts, resumeTask); an approved task is
 * resumed in this process, as `keel approve` resumes it in its own. Open pages get a server-sent
 * event when what they show changed, found by one fingerprint query per interval for all of them.
 */
export async function startConsole(options: ConsoleOptions): Promise<ConsoleServer> {
  const { store } = options;
  const { clock } = options.runOptions;
  if (options.token.length < 16)
    throw new KeelError(
      'PERMISSION_DENIED',
      isLoopback(options.host)
        ? 'the console needs an access token of 16 characters or more'
        : `binding the console to ${options.host} needs an access token`,
      {
        hint: 'set KEEL_CONSOLE_TOKEN to a secret of 16 characters or more (open the console once with ?token=SECRET), or unset it on 127.0.0.1 and keel console makes one',
      },
    );
  const staticDir = options.staticDir ?? defaultStatic;
  if (!existsSync(path.join(staticDir, 'index.html')))
    throw new KeelError('NOT_FOUND', `the console's front end is not built (${staticDir})`, {
      hint: 'pnpm build builds it',
    });
  let port = 0;
  const guards = createGuards({ host: options.host, port: () => port, token: options.token });
  const indexHtml = readFileSync(path.join(staticDir, 'index.html'), 'utf8');

  const streams = new Set<ServerResponse>();
  const broadcast = (event: string, data: unknown) => {
    const frame = `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
    for (const res of streams) res.write(frame);
  };
  let last = '';
  let looking = false;
  const look = async () => {
    if (looking || streams.size === 0) return;
    looking = true;
    try {
      const now = await fingerprint(store);
      if (now !== last) {
        last = now;
        broadcast('change', {});
      }
    } finally {
      looking = false;
    }
  };
  const watch = setInterval(() => void look().catch(() => undefined), options.watchMs ?? 1000);
  const heartbeat = setInterval(() => {
    for (const res of streams) res.write(': keep-alive\n\n');
  }, 15_000);

  /** Tasks this process resumed and runs now, with their progress lines. */
  const resuming = new Map<string, { promise: Promise<void>; lines: string[]; error: string | null }>();
  const resume = (taskId: string, reason: string) => {
    const entry = { lines: [] as string[], error: null as string | null, promise: Promise.resolve() };
    const line = (text: string) => {
      entry.lines.push(text);
      if (entry.lines.length > 200) entry.lines.shift();
      broadcast('progress', { taskId, line: text });
    };
    const progress = (e: ProgressEvent) => line(`step ${e.step} ${e.agent} ${e.kind}: ${e.detail}`);
    entry.promise = resumeTask({
      loaded: options.loaded,
      store,
      taskId,
      reason,
      progress,
      ...options.runOptions,
    })
      .then(({ run }) => line(`ended ${run.status}: ${run.outcome.message}`))
      .catch((error: unknown) => {
        entry.error = (error as Error).message;
        line(`could not resume: ${entry.error}`);
      })
      .finally(() => {
        resuming.delete(taskId);
        broadcast('change', {});
      });
    resuming.set(taskId, entry);
  };

  const serveStatic = (res: ServerResponse, urlPath: string) => {
    if (urlPath === '/' || urlPath === '/index.html') {
      res.writeHead(200, { 'content-type': types['.html']!, 'cache-control': 'no-store' });
      res.end(indexHtml.replace('{{PAGE_TOKEN}}', guards.pageToken()));
      return;
    }
    const file = path.resolve(staticDir, `.${path.posix.normalize(urlPath)}`);
    const type = types[path.extname(file)];
    if (!file.startsWith(staticDir) || type === undefined || !existsSync(file))
      throw new HttpError(404, `no ${urlPath}`);
    res.writeHead(200, { 'content-type': type, 'cache-control': 'no-cache' });
    res.end(readFileSync(file));
  };

  const read = async (url: URL, res: ServerResponse): Promise<boolean> => {
    const p = url.pathname;
    let m: RegExpExecArray | null;
    if (p === '/api/runs') {
      const status = url.searchParams.get('status');
      const type = url.searchParams.get('type');
      if (status !== null && status !== '' && !(taskStatuses as readonly string[]).includes(status))
        throw new HttpError(400, `status must be one of ${taskStatuses.join(', ')}`);
      send(
        res,
        200,
        await listRuns(
          store,
          {
            ...(status ? { status: status as (typeof taskStatuses)[number] } : {}),
            ...(type ? { type } : {}),
          },
          clock.now(),
        ),
      );
    } else if ((m = /^\/api\/runs\/([\w.-]+)$/.exec(p))) {
      const detail = await runDetail(store, m[1]!, clock.now());
      if (detail === undefined) throw new HttpError(404, `no task '${m[1]}'`);
      send(res, 200, { ...detail, resuming: resuming.get(m[1]!)?.lines ?? null });
    } else if ((m = /^\/api\/runs\/([\w.-]+)\/model-calls\/(\d+)$/.exec(p))) {
      const call = await modelCallDetail(store, m[1]!, Number(m[2]));
      if (call === undefined) throw new HttpError(404, `no model call ${m[2]} in task '${m[1]}'`);
      send(res, 200, call);
    } else if (p === '/api/approvals')
      send(res, 200, await listApprovalsView(store, url.searchParams.has('all')));
    else if (p === '/api/stats') {
      // The window as `keel stats --since` takes it (default 7d); `all` is every task.
      const since = url.searchParams.get('since') ?? '7d';
      const now = new Date(clock.now());
      send(
        res,
        200,
        await readStats(store, { now, since: since === 'all' ? undefined : parseSince(since, now) }),
      );
    } else if (p === '/api/evals') send(res, 200, listEvalReports(options.loaded.stateDir));
    else if ((m = /^\/api\/evals\/([^/]+)$/.exec(p)))
      send(res, 200, readEvalReport(options.loaded.stateDir, m[1]!));
    else if (p === '/api/state')
      send(res, 200, { globalStop: await store.getGlobalStop(), resuming: [...resuming.keys()] });
    else if (p === '/api/stream') {
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-store',
        connection: 'keep-alive',
      });
      res.write('retry: 2000\n\n');
      streams.add(res);
      res.on('close', () => streams.delete(res));
    } else return false;
    return true;
  };

  /** A decision that resumes the task here, under a changed config: refused (only the CLI accepts it on purpose). */
  const refuseChangedConfig = (id: string, command: string) =>
    refuseUnderChangedConfig(options.loaded, store, id, {
      acceptCommand: `keel ${command} ${id} --accept-changed-config -c ${options.loaded.file}`,
      nameFile: false,
    });

  const act = async (url: URL, req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const p = url.pathname;
    let m: RegExpExecArray | null;
    const body = async <TSchema extends z.ZodType>(spec: { schema: TSchema; hint: string }) =>
      parse(spec, await readJson(req));
    if ((m = /^\/api\/approvals\/([\w-]+)\/approve$/.exec(p))) {
      const b = await body(bodies.approve);
      await refuseChangedConfig(m[1]!, 'approve');
      const approval = await approveCall(store, m[1]!, b.by, b.reason ?? null, clock);
      resume(approval.taskId, `approval ${approval.id} granted`);
      send(res, 202, { approval, resuming: approval.taskId });
    } else if ((m = /^\/api\/approvals\/([\w-]+)\/deny$/.exec(p))) {
      const b = await body(bodies.deny);
      send(res, 200, { approval: await denyCall(store, m[1]!, b.by, b.reason, clock) });
    } else if ((m = /^\/api\/escalations\/([\w-]+)\/continue$/.exec(p))) {
      const b = await body(bodies.continue);
      const raise = Object.fromEntries(
        Object.entries(b.raise).filter(([, value]) => value !== undefined),
      ) as Partial<Limits>;
      await refuseChangedConfig(m[1]!, 'continue');
      const approval = await continueEscalation(store, m[1]!, b.by, raise, b.hint, clock);
      resume(approval.taskId, `escalation ${approval.id} continued`);
      send(res, 202, { approval, resuming: approval.taskId });
    } else if ((m = /^\/api\/escalations\/([\w-]+)\/abort$/.exec(p))) {
      const b = await body(bodies.abort);
      send(res, 200, { approval: await abortEscalation(store, m[1]!, b.by, b.reason, clock) });
    } else if ((m = /^\/api\/runs\/([\w.-]+)\/kill$/.exec(p))) {
      const b = await body(bodies.kill);
      if ((await store.getTask(m[1]!)) === undefined) throw new HttpError(404, `no task '${m[1]}'`);
      send(res, 200, await killTask(store, m[1]!, b.by, { clock }));
    } else if (p === '/api/kill-all') {
      const b = await body(bodies.kill);
      send(res, 200, await killAll(store, b.by, { clock }));
    } else if (p === '/api/resume-all') {
      await body(bodies.kill);
      send(res, 200, { lifted: await liftGlobalStop(store) });
    } else return false;
    broadcast('change', {});
    return true;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    res.setHeader(
      'content-security-policy',
      "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    );
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('referrer-policy', 'no-referrer');
    if (!guards.hostAllowed(req))
      throw new HttpError(
        421,
        `host ${req.headers.host ?? '(none)'} is not this console`,
        `open it as http://127.0.0.1:${port}/ (the name keel console printed)`,
      );
    const url = new URL(req.url ?? '/', 'http://console.invalid');
    const given = url.searchParams.get('token');
    if (req.method === 'GET' && url.pathname === '/' && given !== null && guards.tokenMatches(given)) {
      res.writeHead(303, {
        location: '/',
        'set-cookie': `${accessCookie}=${encodeURIComponent(given)}; HttpOnly; SameSite=Strict; Path=/`,
      });
      res.end();
      return;
    }
    if (!guards.hasAccess(req))
      throw new HttpError(
        401,
        'this console needs its access token',
        'open the address keel console printed (it ends in ?token=…), or /?token=KEEL_CONSOLE_TOKEN when it was started with one; the page keeps it in a cookie',
      );
    if (req.method === 'GET' || req.method === 'HEAD') {
      if (url.pathname.startsWith('/api/')) {
        if (!(await read(url, res))) throw new HttpError(404, `no ${url.pathname}`);
      } else serveStatic(res, url.pathname);
      return;
    }
    if (req.method !== 'POST') throw new HttpError(405, `${req.method} is not served here`);
    const refusal = guards.crossSiteRefusal(req);
    if (refusal !== undefined)
      throw new HttpError(
        403,
        `refused: ${refusal}`,
        "state-changing requests come only from the console's own page: reload it and act there",
      );
    if (!(await act(url, req, res))) throw new HttpError(404, `no ${url.pathname}`);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (res.headersSent) {
        res.end();
        return;
      }
      if (error instanceof HttpError)
        send(res, error.status, {
          error: {
            code: 'HTTP',
            message: error.message,
            ...(error.hint === null ? {} : { hint: error.hint }),
          },
        });
      else if (error instanceof KeelError)
        send(res, statusOf[error.code] ?? 500, {
          error: { code: error.code, message: error.message, hint: error.hint ?? null },
        });
      else send(res, 500, { error: { code: 'INTERNAL', message: (error as Error).message } });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  const shownHost = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `http://${shownHost}:${port}/`,
    async close() {
      clearInterval(watch);
      clearInterval(heartbeat);
      for (const res of streams) res.end();
      streams.clear();
      await Promise.all([...resuming.values()].map((r) => r.promise));
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
