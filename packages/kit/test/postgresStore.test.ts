import net from 'node:net';
import { describe, expect, it } from 'vitest';
import pg from 'pg';
import {
  auditLogConformance,
  idempotencyStoreConformance,
  stateStoreConformance,
  type ConformanceBackend,
  type StateStoreOpener,
} from '../src/conformance/index.js';
import { openStoreBackend } from '../src/backend/open.js';
import {
  createPostgresAuditLog,
  createPostgresIdempotencyStore,
  createPostgresStateStore,
  isConnectionLost,
  migratePostgres,
  openPostgresBackend,
  openPostgres,
  transaction,
} from '../src/postgres/backend.js';
import { freshDatabase, noPostgres } from './postgres.js';

/** A conformance backend: a fresh database per test, each connection its own pool. */
function onPostgres<TThing>(make: (pool: pg.Pool) => TThing): ConformanceBackend<TThing> {
  return {
    async open() {
      const database = await freshDatabase();
      const pools = [await openPostgres(database.url)];
      return {
        subject: make(pools[0]!),
        async another() {
          const pool = await openPostgres(database.url);
          pools.push(pool);
          return make(pool);
        },
        async close() {
          for (const pool of pools) await pool.end();
          await database.drop();
        },
      };
    },
  };
}

const api = { describe: noPostgres ? describe.skip : describe, it, expect };
// The kit's suites, unchanged, on PostgreSQL.
idempotencyStoreConformance(api, onPostgres(createPostgresIdempotencyStore));
auditLogConformance(api, onPostgres(createPostgresAuditLog));
stateStoreConformance(
  api,
  onPostgres<StateStoreOpener>(
    (pool) => (namespace, options) => createPostgresStateStore(pool, namespace, options),
  ),
);

describe.skipIf(noPostgres)('the PostgreSQL backend', () => {
  it('migrates once however many replicas start together, and again is a no-op', async () => {
    const database = await freshDatabase();
    try {
      const pools = await Promise.all(Array.from({ length: 4 }, () => openPostgres(database.url)));
      expect(await migratePostgres(pools[0]!)).toEqual({ from: 1, to: 1 });
      const tables = await pools[0]!.query<{ name: string }>(
        "SELECT tablename AS name FROM pg_tables WHERE tablename LIKE 'keel_%' ORDER BY 1",
      );
      expect(tables.rows.map((row) => row.name)).toEqual([
        'keel_audit_head',
        'keel_audit_log',
        'keel_idempotency',
        'keel_kit_schema',
        'keel_secrets',
        'keel_server_state',
      ]);
      for (const pool of pools) await pool.end();
    } finally {
      await database.drop();
    }
  });

  it('gives every replica the same secret, and writes a completion and its audit row together', async () => {
    const database = await freshDatabase();
    try {
      const [a, b] = await Promise.all([
        openStoreBackend({ store: database.url, stateDir: '/nonexistent' }),
        openStoreBackend({ store: database.url, stateDir: '/nonexistent' }),
      ]);
      expect(a!.kind).toBe('postgres');
      expect(Buffer.from(a!.secret).equals(Buffer.from(b!.secret))).toBe(true);
      expect(a!.secret.byteLength).toBe(32);
      expect(a!.idempotency.auditsCompletions).toBe(true);
      const claim = await a!.idempotency.claim({
        scope: 'git',
        key: 'k',
        fingerprint: 'f',
        owner: 'a',
        leaseMs: 1000,
        ttlMs: 60_000,
      });
      if (claim.kind !== 'claimed') throw new Error(claim.kind);
      const entry = {
        server: 'git',
        tool: 'git_commit',
        args: {},
        outcome: 'ok' as const,
        idempotencyKey: 'k',
      };
      expect(await a!.idempotency.complete('git', 'k', 'not-the-token', { r: 0 }, entry)).toBe(false);
      expect(await a!.idempotency.complete('git', 'k', claim.token, { r: 1 }, entry)).toBe(true);
      expect((await b!.audit.list()).map((row) => [row.seq, row.tool, row.idempotencyKey])).toEqual([
        [1, 'git_commit', 'k'],
      ]);
      // The append-only trigger stands between the log and an UPDATE.
      const pool = await openPostgres(database.url);
      await expect(pool.query("UPDATE keel_audit_log SET tool = 'x'")).rejects.toThrow(/append-only/);
      await pool.end();
      await a!.close();
      await b!.close();
    } finally {
      await database.drop();
    }
  });

  it("names the idempotency store once per database: every replica reports the first one's name", async () => {
    const database = await freshDatabase();
    const other = await freshDatabase();
    const opened = [
      await openPostgresBackend(database.url),
      await openPostgresBackend(database.url),
      await openPostgresBackend(other.url),
    ];
    try {
      const [first, second, elsewhere] = opened.map((backend) => backend.idempotency.identity);
      expect(first).toMatch(/^[0-9a-f]{32}$/);
      expect(second).toBe(first);
      expect(elsewhere).toMatch(/^[0-9a-f]{32}$/);
      expect(elsewhere).not.toBe(first);
      // A store made on its own (no backend to name it) has no identity: a tool never skips a check on its word.
      const pool = await openPostgres(other.url);
      expect(createPostgresIdempotencyStore(pool).identity).toBeUndefined();
      await pool.end();
    } finally {
      for (const backend of opened) await backend.close();
      await database.drop();
      await other.drop();
    }
  });

  it('a session ended while a replica opens the store is tried again on a fresh connection', async () => {
    const database = await freshDatabase();
    const holder = new pg.Client({ connectionString: database.url });
    await holder.connect();
    try {
      // The migration waits for its advisory lock; its session is then ended, as an
      // administrator's pg_terminate_backend (or a failover) ends it.
      await holder.query('SELECT pg_advisory_lock($1)', [0x6b65656c]);
      const opening = openPostgresBackend(database.url);
      let terminated = 0;
      for (let polls = 0; terminated === 0 && polls < 500; polls++) {
        const { rows } = await holder.query<{ ended: boolean }>(
          `SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'`,
        );
        terminated = rows.length;
        if (terminated === 0) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(terminated).toBe(1);
      await holder.query('SELECT pg_advisory_unlock($1)', [0x6b65656c]);
      const backend = await opening;
      expect(backend.kind).toBe('postgres');
      expect(backend.secret.length).toBe(32);
      await backend.close();
    } finally {
      await holder.end();
      await database.drop();
    }
  });

  it('a claim and a completion whose answers were lost after they landed are recognised on the retry: one claim, one audit row', async () => {
    await throughCuttingProxy(async ({ proxy, pool, direct }) => {
      const store = createPostgresIdempotencyStore(pool);
      // The insert commits, then the connection is cut before its answer reaches the store: the
      // key is claimed and the store does not know it.
      proxy.cutAfter('INSERT 0 1');
      const claim = await store.claim({
        scope: 'git',
        key: 'k',
        fingerprint: 'f',
        owner: 'replica-a',
        leaseMs: 30_000,
        ttlMs: 60_000,
      });
      expect(proxy.cuts()).toBe(1);
      if (claim.kind !== 'claimed') throw new Error(`claimed on the retry, not ${claim.kind}`);
      const row = await direct.query('SELECT state, owner, token, attempts FROM keel_idempotency');
      expect(row.rows).toEqual([
        { state: 'in_progress', owner: 'replica-a', token: claim.token, attempts: 1 },
      ]);
      // The completion's transaction commits with its audit row, then its answer is lost.
      proxy.cutAfter('COMMIT');
      const entry = {
        server: 'git',
        tool: 'git_commit',
        args: {},
        outcome: 'ok' as const,
        idempotencyKey: 'k',
      };
      expect(await store.complete('git', 'k', claim.token, { r: 1 }, entry)).toBe(true);
      expect(proxy.cuts()).toBe(2);
      const audit = await direct.query('SELECT seq, tool, idempotency_key FROM keel_audit_log');
      expect(audit.rows).toEqual([{ seq: '1', tool: 'git_commit', idempotency_key: 'k' }]);
      expect(await store.get('git', 'k')).toMatchObject({
        state: 'completed',
        result: { r: 1 },
        attempts: 1,
      });
    });
  });

  it('a lone audit append whose connection is lost is tried again and lands once, whether or not the first try landed', async () => {
    await throughCuttingProxy(async ({ proxy, pool, direct }) => {
      const log = createPostgresAuditLog(pool);
      const entry = (tool: string) => ({
        server: 'filesystem',
        tool,
        args: { path: 'a.txt' },
        outcome: 'ok' as const,
      });
      // Lost before it landed: the answer to the head's lock never arrives.
      proxy.cutAfter('SELECT 1');
      expect((await log.append(entry('write_file'))).seq).toBe(1);
      expect(proxy.cuts()).toBe(1);
      // Lost after it landed: the row committed, and its COMMIT's answer never arrives.
      proxy.cutAfter('COMMIT');
      expect((await log.append(entry('edit_file'))).seq).toBe(2);
      expect(proxy.cuts()).toBe(2);
      // Two calls, two rows: none lost, none written twice.
      const rows = await direct.query('SELECT seq, tool FROM keel_audit_log ORDER BY seq');
      expect(rows.rows).toEqual([
        { seq: '1', tool: 'write_file' },
        { seq: '2', tool: 'edit_file' },
      ]);
      expect(await createPostgresAuditLog(direct).verify()).toMatchObject({ ok: true, rows: 2 });
    });
  });

  it('tells a lost connection from a statement that failed, through causes', () => {
    expect(
      [
        { code: '57P01', message: 'terminating connection due to administrator command' },
        { code: '57P02' },
        { code: '57P03' },
        { code: '25P03' },
        { code: '08006' },
        { code: 'ECONNRESET' },
        new Error('Connection terminated unexpectedly'),
        new Error('cannot use the PostgreSQL store', { cause: { code: '57P01' } }),
        { code: '23505', message: 'duplicate key value violates unique constraint' },
        { code: '40001' },
        new Error('Connection refused by policy: not this'),
        new Error('wrapped', { cause: { code: '42P01' } }),
        undefined,
      ].map(isConnectionLost),
    ).toEqual([true, true, true, true, true, true, true, true, false, false, false, false, false]);
  });

  it('refuses a URL that is not PostgreSQL, and names an unreachable server without its password', async () => {
    await expect(
      openStoreBackend({ store: 'mysql://u@h/db', stateDir: '/nonexistent' }),
    ).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: "--store must be a postgres:// URL, not 'mysql:…'",
    });
    await expect(
      openStoreBackend({ store: 'postgres://keel:hunter2@127.0.0.1:1/keel', stateDir: '/nonexistent' }),
    ).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      message: expect.stringMatching(
        /^cannot use the PostgreSQL store at postgres:\/\/keel:\*\*\*@127\.0\.0\.1:1\/keel: /,
      ),
    });
  });
  it('a holder that stops mid-transaction loses its session and its locks: the next writer goes on, the stalled one rolls back', async () => {
    const database = await freshDatabase();
    const [stalled, other] = [await openPostgres(database.url), await openPostgres(database.url)];
    try {
      let locked!: () => void;
      const holding = new Promise<void>((resolve) => (locked = resolve));
      let wake!: () => void;
      const woken = new Promise<void>((resolve) => (wake = resolve));
      // The chain's head locked, then nothing sent: a process paused between two statements.
      const held = transaction(stalled, async (client) => {
        await client.query('SELECT seq FROM keel_audit_head WHERE id = 1 FOR UPDATE');
        locked();
        await woken;
        await client.query("INSERT INTO keel_secrets (name, value) VALUES ('stalled', 'x')");
      });
      const outcome = held.then(
        () => 'committed',
        (error: Error) => error.message,
      );
      await holding;
      const row = await createPostgresAuditLog(other).append({
        server: 'kit-test',
        tool: 'append',
        args: {},
        outcome: 'ok',
      });
      expect(row.seq).toBe(1);
      wake();
      expect(await outcome).toBe('terminating connection due to idle-in-transaction timeout');
      const left = await other.query("SELECT count(*)::int AS n FROM keel_secrets WHERE name = 'stalled'");
      expect(left.rows[0].n).toBe(0);
      // The broken connection was discarded: the stalled pool's next query runs on a fresh one.
      expect((await stalled.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one).toBe(1);
    } finally {
      await stalled.end();
      await other.end();
      await database.drop();
    }
  }, 60_000);
});

/**
 * A fresh database reached two ways: `pool` through a {@link cuttingProxy}, `direct` around it to
 * check what landed. Everything is closed and dropped when `body` ends.
 */
async function throughCuttingProxy(
  body: (it: {
    proxy: Awaited<ReturnType<typeof cuttingProxy>>;
    pool: pg.Pool;
    direct: pg.Pool;
  }) => Promise<void>,
): Promise<void> {
  const database = await freshDatabase();
  const proxy = await cuttingProxy(new URL(database.url));
  const through = new URL(database.url);
  through.host = `127.0.0.1:${proxy.port}`;
  const pool = await openPostgres(through.toString());
  const direct = await openPostgres(database.url);
  try {
    await body({ proxy, pool, direct });
  } finally {
    await pool.end();
    await direct.end();
    await proxy.close();
    await database.drop();
  }
}

/**
 * A TCP proxy in front of PostgreSQL that, once armed with a command tag, cuts the connection that
 * receives it before the answer is passed on: the statement took effect, and its client never hears so.
 */
async function cuttingProxy(target: URL) {
  let armed: Buffer | undefined;
  let cuts = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    client.on('data', (chunk) => upstream.write(chunk));
    upstream.on('data', (chunk: Buffer) => {
      if (armed !== undefined && chunk.includes(armed)) {
        armed = undefined;
        cuts++;
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(chunk);
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    /** The next answer holding this command tag (a CommandComplete message) is withheld, its connection cut. */
    cutAfter(tag: string) {
      armed = Buffer.from(`${tag}\0`);
    },
    cuts: () => cuts,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
