import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  createAuditLog,
  createPathJail,
  createServer,
  createSqliteStateStore,
  ERROR_META_KEY,
  openStateDatabase,
  type AuditLog,
  type KeelServer,
  type ToolError,
} from '@keel/kit';
import { tempDir, type McpTestClient } from '@keel/testing';
import type { KeyObject } from 'node:crypto';
import { expect, onTestFinished } from 'vitest';
import { stringify } from 'yaml';
import { createDeployServerTools, loadDeployConfig } from '../src/index.js';

export const binPath = new URL('../dist/bin.js', import.meta.url).pathname;

export interface Project {
  root: string;
  build: string;
  deployRoot: string;
  stateDir: string;
  configFile: string;
}

/** A project with a build directory, a deploy root beside it and a config naming both. */
export async function createProject(
  environments: Record<string, Record<string, unknown>> = { staging: {} },
  files: Record<string, string> = {
    'index.html': '<h1>v1</h1>\n',
    'app.js': 'console.log(1);\n',
    'assets/logo.svg': '<svg/>\n',
  },
): Promise<Project> {
  const base = await tempDir('keel-deploy-');
  const root = path.join(base, 'project');
  const build = path.join(root, 'dist');
  const deployRoot = path.join(base, 'deploys');
  const stateDir = path.join(base, 'state');
  await writeTree(build, files);
  const config = {
    environments: Object.fromEntries(
      Object.entries(environments).map(([name, env]) => [
        name,
        { build: 'dist', target: { type: 'directory', path: `../deploys/${name}` }, ...env },
      ]),
    ),
  };
  const configFile = path.join(root, 'keel.deploy.yaml');
  await writeFile(configFile, stringify(config));
  return { root, build, deployRoot, stateDir, configFile };
}

export async function writeTree(dir: string, files: Record<string, string>): Promise<void> {
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), content);
  }
}

export interface InProcess {
  server: KeelServer;
  audit: AuditLog;
  clock: { now: number };
  call(
    name: string,
    args: Record<string, unknown>,
    meta?: Record<string, unknown>,
  ): Promise<Record<string, any>>;
  error(name: string, args: Record<string, unknown>, meta?: Record<string, unknown>): Promise<ToolError>;
}

/** The deploy tools on the kit's pipeline in this process, with state in the project's state dir and a settable clock. */
export async function startInProcess(project: Project, approvalKeys: KeyObject[] = []): Promise<InProcess> {
  const state = openStateDatabase(project.stateDir);
  onTestFinished(() => state.close());
  const clock = { now: Date.parse('2026-11-30T12:00:00Z') };
  const audit = createAuditLog(state.db);
  const server = createServer({
    name: 'keel-deploy',
    version: '0.1.0',
    now: () => clock.now,
    jail: await createPathJail([project.root]),
    audit,
    tools: createDeployServerTools({
      config: loadDeployConfig(project.configFile, project.root),
      store: createSqliteStateStore(state.db, 'deploy', { now: () => clock.now }),
      approvalKeys,
      now: () => clock.now,
    }),
  });
  const call = async (name: string, args: Record<string, unknown>, meta?: Record<string, unknown>) => {
    const result = await server.callTool(name, args, meta === undefined ? {} : { meta });
    if (result.isError === true) throw new Error(`${name} failed: ${JSON.stringify(result.content)}`);
    return result.structuredContent as Record<string, any>;
  };
  const error = async (name: string, args: Record<string, unknown>, meta?: Record<string, unknown>) => {
    const result = await server.callTool(name, args, meta === undefined ? {} : { meta });
    if (result.isError !== true)
      throw new Error(`${name} should fail but returned ${JSON.stringify(result.structuredContent)}`);
    return result._meta?.[ERROR_META_KEY] as ToolError;
  };
  return { server, audit, clock, call, error };
}

export interface HealthEndpoint {
  url: string;
  /** The status the next requests get. */
  status: number;
  /** Requests seen so far. */
  hits: number;
  /** The next `count` requests (all, by default) wait until `release()`; resolves when the first arrived. */
  hold(count?: number): Promise<void>;
  release(): void;
}

/** A real HTTP health endpoint on 127.0.0.1. `hold()` resolves when a held request has arrived. */
export async function startHealthEndpoint(status = 200): Promise<HealthEndpoint> {
  let held: Array<() => void> | undefined;
  let toHold = 0;
  let arrived: (() => void) | undefined;
  const endpoint: HealthEndpoint = {
    url: '',
    status,
    hits: 0,
    hold: (count = Number.POSITIVE_INFINITY) =>
      new Promise<void>((resolve) => {
        held = [];
        toHold = count;
        arrived = resolve;
      }),
    release: () => {
      const waiting = held ?? [];
      held = undefined;
      for (const answer of waiting) answer();
    },
  };
  const server = createHttpServer((request: IncomingMessage, response: ServerResponse) => {
    endpoint.hits++;
    const answer = () => response.writeHead(endpoint.status).end('ok');
    if (held === undefined || toHold === 0) {
      answer();
      return;
    }
    toHold--;
    held.push(answer);
    arrived?.();
    arrived = undefined;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/health`;
  onTestFinished(
    () =>
      new Promise<void>((resolve) => {
        endpoint.release();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return endpoint;
}

/** Waits until a process is gone (reaped), so its pid no longer answers. */
export async function gone(pid: number): Promise<void> {
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Calls a tool on a server armed with a crash point and returns once the server is dead; proves the
 * death was that crash point (its last log line) rather than anything else.
 */
export async function callUntilCrash(
  client: McpTestClient & { stderr: () => string; pid: number | undefined },
  point: string,
  name: string,
  args: Record<string, unknown>,
  meta: Record<string, unknown> = {},
): Promise<void> {
  await client.callTool({ name, arguments: args, _meta: meta }).then(
    (result) => {
      throw new Error(`${name} returned instead of crashing at ${point}: ${JSON.stringify(result)}`);
    },
    () => undefined,
  );
  await gone(client.pid!);
  // The server's log lines (a shell between the client and the server may add its own, e.g. `Killed`).
  const lines = client
    .stderr()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  expect(lines.at(-1)).toMatchObject({
    msg: 'crash point reached: SIGKILL (KEEL_CRASH_AT)',
    crashPoint: point,
  });
}
