import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { execFile } from 'node:child_process';
import { mkdir, readdir, readlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  connectHttp,
  createGitRepo,
  startHttpServer,
  tempDir,
  toolErrorOf,
  type ClientKind,
  type HttpServerProcess,
  type McpTestClient,
  type ToolCallResult,
} from '@keel/testing';
import { noNginx, startBalancer } from '@keel/testing/nginx';
import { freshDatabase, noPostgres } from '@keel/testing/postgres';
import pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';

const run = promisify(execFile);
const gitBin = new URL('../../../servers/git/dist/bin.js', import.meta.url).pathname;
const deployBin = new URL('../../../servers/deploy/dist/bin.js', import.meta.url).pathname;
const skipped = noPostgres || noNginx;

/** A replica of a server bin over HTTP on the shared PostgreSQL store, with its own state dir. */
async function replica(
  bin: string,
  root: string,
  store: string,
  extra: string[] = [],
): Promise<HttpServerProcess> {
  const stateDir = await tempDir('keel-replica-state-');
  return startHttpServer({
    command: process.execPath,
    args: [bin, '--root', root, '--http', '--port', '0', '--store', store, '--state-dir', stateDir, ...extra],
    env: {},
  });
}

/** The clients of one test: half speak the 2025 protocol (v1 SDK, `initialize`), half 2026-07-28. */
async function clients(url: string, count: number): Promise<McpTestClient[]> {
  return Promise.all(
    Array.from({ length: count }, (_, index) => {
      const kind: ClientKind = index % 2 === 0 ? 'v1' : 'v2';
      return connectHttp(url, kind, kind === 'v2' ? { era: 'modern' } : {});
    }),
  );
}

const structured = (result: ToolCallResult) => result.structuredContent as Record<string, any>;

async function auditRows(
  store: string,
): Promise<Array<{ tool: string; outcome: string; key: string | null }>> {
  const client = new pg.Client({ connectionString: store });
  await client.connect();
  try {
    const found = await client.query<{ tool: string; outcome: string; key: string | null }>(
      'SELECT tool, outcome, idempotency_key AS key FROM keel_audit_log ORDER BY seq',
    );
    return found.rows;
  } finally {
    await client.end();
  }
}

describe.skipIf(skipped)(
  `server replicas behind nginx on one PostgreSQL store${skipped ? ` (skipped: ${skipped})` : ''}`,
  () => {
    it('100 concurrent same-key commits through two replicas: one commit, one audit chain, every answer that commit', async () => {
      const store = await freshDatabase();
      const repo = await createGitRepo({ files: { 'README.md': 'hello\n' } });
      await repo.write('CHANGELOG.md', 'one change\n');
      await repo.git(['add', 'CHANGELOG.md']);
      const [a, b] = await Promise.all([replica(gitBin, repo.dir, store), replica(gitBin, repo.dir, store)]);
      const balancer = await startBalancer({ git: [a!.url, b!.url] });
      const callers = await clients(balancer.urls['git']!, 10);
      const args = { message: 'Record one change', idempotencyKey: 'commit-once' };
      const answers = await Promise.all(
        Array.from({ length: 100 }, (_, index) =>
          callers[index % callers.length]!.callTool({ name: 'git_commit', arguments: args }),
        ),
      );
      expect(answers.map((answer) => toolErrorOf(answer)?.code ?? 'ok')).toEqual(Array(100).fill('ok'));
      const shas = new Set(answers.map((answer) => structured(answer)['sha'] as string));
      expect(shas.size).toBe(1);
      const log = (await repo.git(['log', '--format=%H %s'])).trim().split('\n');
      expect(log).toEqual([`${[...shas][0]} Record one change`, expect.stringMatching(/ initial$/)]);
      // Both replicas answered: nginx spread the requests, and neither ran the commit a second time.
      const served = new Set(await balancer.upstreams());
      expect([...served].sort()).toEqual([new URL(a!.url).host, new URL(b!.url).host].sort());
      const rows = await auditRows(store);
      expect(rows.filter((row) => row.outcome === 'ok')).toEqual([
        { tool: 'git_commit', outcome: 'ok', key: 'commit-once' },
      ]);
      expect(rows.filter((row) => row.outcome === 'replayed')).toHaveLength(99);
      // One chain however many writers: the bin's own verify, against the shared store.
      const verified = await run(process.execPath, [gitBin, 'audit', 'verify', '--store', store]);
      expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true, rows: 100 });
    }, 120_000);

    it('2025-era clients get no session to pin: any replica answers any request of one client', async () => {
      const store = await freshDatabase();
      const repo = await createGitRepo({ files: { 'a.txt': 'a\n' } });
      const [a, b] = await Promise.all([replica(gitBin, repo.dir, store), replica(gitBin, repo.dir, store)]);
      const balancer = await startBalancer({ git: [a!.url, b!.url] });
      const response = await fetch(balancer.urls['git']!, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: {
            protocolVersion: '2025-06-18',
            capabilities: {},
            clientInfo: { name: 'raw', version: '0' },
          },
        }),
      });
      expect([response.status, response.headers.get('mcp-session-id')]).toEqual([200, null]);
      await response.text();
      const [client] = await clients(balancer.urls['git']!, 1);
      for (let i = 0; i < 6; i++)
        expect(toolErrorOf(await client!.callTool({ name: 'git_status', arguments: {} }))).toBeUndefined();
      expect(new Set(await balancer.upstreams()).size).toBe(2);
    }, 60_000);

    it('kill -9 of the replica inside a deploy, the retry through the other: one release, live', async () => {
      const store = await freshDatabase();
      const health = await holdingHealthEndpoint();
      const base = await tempDir('keel-replica-deploy-');
      const root = path.join(base, 'project');
      await mkdir(path.join(root, 'dist'), { recursive: true });
      await writeFile(path.join(root, 'dist', 'index.html'), '<h1>v1</h1>\n');
      await writeFile(
        path.join(root, 'keel.deploy.yaml'),
        `environments:\n  staging:\n    build: dist\n    target: { type: directory, path: ../deploys/staging }\n    policy:\n      health: { http: '${health.url}' }\n`,
      );
      // A short lease, so the survivor takes over the dead replica's claim within seconds.
      const flags = ['--lease-ms', '1500'];
      const [a, b] = await Promise.all([
        replica(deployBin, root, store, flags),
        replica(deployBin, root, store, flags),
      ]);
      const balancer = await startBalancer({ deploy: [a!.url, b!.url] });
      // A 2026-07-28 client, as a pipeline would use: stateless, so any replica may answer it.
      const caller = await connectHttp(balancer.urls['deploy']!, 'v2', { era: 'modern' });
      // The plan lives in the shared store: made through one replica, applied through either.
      const plan = structured(
        await caller.callTool({ name: 'plan_deploy', arguments: { environment: 'staging' } }),
      );
      const arrived = health.hold();
      const apply = {
        name: 'apply_deploy',
        arguments: { planId: plan['planId'], idempotencyKey: 'deploy-once' },
      };
      const pending = caller.callTool(apply).then(
        (result) => result,
        (error: Error) => error,
      );
      await arrived; // switched; the health check waits
      // The replica running it holds the key's claim in the shared store.
      const holder = Number((await claimOwner(store, 'deploy-once')).split(':')[0]);
      const [victim, survivor] = a!.child.pid === holder ? [a!, b!] : [b!, a!];
      expect(victim.child.pid).toBe(holder);
      victim.child.kill('SIGKILL');
      await victim.stop();
      health.release();
      // Either nginx passes the dropped request on to the survivor itself (proxy_next_upstream), or the
      // client sees a 502 and retries the same call; both reach the survivor, which recovers the dead
      // claim once its lease runs out and finishes that same deploy.
      const first = await pending;
      const passedOn = (await balancer.upstreams()).includes(
        `${new URL(victim.url).host}, ${new URL(survivor.url).host}`,
      );
      const how =
        first instanceof Error
          ? /502 Bad Gateway/.test(first.message)
            ? 'the client retried after a 502'
            : first.message
          : passedOn
            ? 'nginx passed it on'
            : 'answered without the survivor';
      expect(['the client retried after a 502', 'nginx passed it on']).toContain(how);
      const answer =
        first instanceof Error ? await retryWhileInProgress(() => caller.callTool(apply)) : first;
      expect(toolErrorOf(answer)).toBeUndefined();
      expect([
        structured(answer)['status'],
        structured(answer)['releaseId'],
        structured(answer)['notes'],
      ]).toEqual([
        'live',
        plan['releaseId'],
        [`finished the interrupted deploy of '${plan['releaseId']}': live`],
      ]);
      // Any later retry of the same call is answered from the store: no second deploy.
      const again = await caller.callTool(apply);
      expect(again._meta?.['keel/idempotency']).toMatchObject({ key: 'deploy-once', replayed: true });
      expect(structured(again)).toEqual(structured(answer));
      expect(await readdir(path.join(base, 'deploys', 'staging', 'releases'))).toEqual([plan['releaseId']]);
      expect(await readlink(path.join(base, 'deploys', 'staging', 'current'))).toBe(
        `releases/${plan['releaseId']}`,
      );
      expect(
        (await auditRows(store)).filter((row) => row.tool === 'apply_deploy' && row.outcome !== 'replayed'),
      ).toEqual([{ tool: 'apply_deploy', outcome: 'ok', key: 'deploy-once' }]);
      expect(survivor.child.exitCode).toBe(null);
    }, 120_000);
  },
);

/** Retries a call while its answer is IN_PROGRESS (another replica's claim still leased), as a client would. */
async function retryWhileInProgress(call: () => Promise<ToolCallResult>): Promise<ToolCallResult> {
  for (let attempt = 0; ; attempt++) {
    const result = await call();
    if (toolErrorOf(result)?.code !== 'IN_PROGRESS' || attempt === 120) return result;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** The owner of a key's claim in the shared store: the running replica's pid, then a random part. */
async function claimOwner(store: string, key: string): Promise<string> {
  const client = new pg.Client({ connectionString: store });
  await client.connect();
  try {
    const found = await client.query<{ owner: string }>('SELECT owner FROM keel_idempotency WHERE key = $1', [
      key,
    ]);
    return found.rows[0]!.owner;
  } finally {
    await client.end();
  }
}

/** A health endpoint that answers 200, and can hold requests until released. */
async function holdingHealthEndpoint() {
  let held: Array<() => void> | undefined;
  let arrived: (() => void) | undefined;
  const server = createHttpServer((_req: IncomingMessage, res: ServerResponse) => {
    const answer = () => res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    if (held === undefined) {
      answer();
      return;
    }
    held.push(answer);
    arrived?.();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`,
    hold: () => {
      held = [];
      return new Promise<void>((resolve) => (arrived = resolve));
    },
    release: () => {
      const waiting = held ?? [];
      held = undefined;
      for (const answer of waiting) answer();
    },
  };
}
