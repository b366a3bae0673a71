import { describe, expect, it, onTestFinished } from 'vitest';
import { execFile, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import pg from 'pg';
import { createGitRepo, tempDir } from '@keel/testing';
import { postgresMigrations } from '../src/store/postgresMigrations.js';
import { createPostgresTaskStore, migratePostgres } from '../src/store/postgresTaskStore.js';
import { applyMigrations, migrateSqlite, sqliteMigrations } from '../src/store/sqliteMigrations.js';
import { createSqliteTaskStore } from '../src/store/sqliteTaskStore.js';
import { freshDatabase, testDatabaseUrl } from './postgres.js';

const latest = sqliteMigrations.length;
const keelBin = new URL('../dist/bin.js', import.meta.url).pathname;

/** Runs the `keel` bin in `cwd` on the config there, with `env` added. */
function keel(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) {
  const { KEEL_STATE_DIR: _dir, KEEL_DATABASE_URL: _url, ...inherited } = process.env;
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [keelBin, ...args],
      { cwd, env: { ...inherited, KEEL_CONFIG: '', ...env } },
      (error, stdout, stderr) => resolve({ code: error === null ? 0 : Number(error.code), stdout, stderr }),
    );
  });
}
const beforeVersions = readFileSync(new URL('./fixtures/tasksBeforeVersions.sql', import.meta.url), 'utf8');

/** A state dir whose tasks.db is the store keel wrote before schema versions (user_version 0). */
async function storeBeforeVersions(): Promise<{ dir: string; file: string }> {
  const dir = await tempDir('keel-migrate-');
  const file = path.join(dir, 'tasks.db');
  const db = new Database(file);
  db.exec(beforeVersions);
  db.close();
  return { dir, file };
}

function userVersion(file: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return db.pragma('user_version', { simple: true }) as number;
  } finally {
    db.close();
  }
}

describe('SQLite task store migrations', () => {
  it('upgrades a store written before schema versions in place, keeping every record and the chain', async () => {
    const { dir, file } = await storeBeforeVersions();
    expect(userVersion(file)).toBe(0);
    const store = createSqliteTaskStore(dir);
    onTestFinished(() => store.close());
    expect(userVersion(file)).toBe(latest);

    expect((await store.listTasks()).map((t) => [t.id, t.status, t.endedAt])).toEqual([
      ['t-old-2', 'running', null],
      ['t-old-1', 'succeeded', '2026-11-30T00:00:12.000Z'],
    ]);
    expect(await store.getTask('t-old-2')).toEqual({
      id: 't-old-2',
      type: 'bugfix',
      title: 'task t-old-2',
      mode: 'orchestrated',
      status: 'running',
      createdAt: '2026-11-30T00:00:02.000Z',
      endedAt: null,
      configHash: 'c'.repeat(64),
      spec: { type: 'bugfix', title: 'task t-old-2' },
      startingState: { git: { head: 'a'.repeat(40) } },
      run: null,
    });
    expect((await store.listEvents('t-old-1')).map((e) => [e.seq, e.type, e.data])).toEqual([
      [1, 'task_started', { type: 'bugfix' }],
      [3, 'task_resumed', { fromStep: 0, reason: 'provider error' }],
      [4, 'task_finished', { outcome: { message: 'done' }, status: 'succeeded' }],
    ]);
    expect(await store.verifyEvents()).toEqual({ ok: true, events: 5 });
    expect(
      (await store.listModelCalls('t-old-1')).map((c) => [c.id, c.step, c.error, c.reply, c.costUsd]),
    ).toEqual([
      [1, 1, 'HTTP 500 from the provider', null, 0],
      [2, 1, null, { text: 'reply 1' }, 0.25],
      [3, 2, null, { text: 'reply 2' }, 0.25],
    ]);
    expect(
      (await store.listToolCalls('t-old-1')).map((c) => [
        c.id,
        c.tool,
        c.arguments,
        c.irreversible,
        c.effect,
      ]),
    ).toEqual([[1, 'git_commit', { message: 'fix' }, true, { files: ['a.ts'] }]]);
    expect(
      (await store.listApprovals()).map((a) => [a.id, a.status, a.decidedBy, a.consumedBy, a.reasons]),
    ).toEqual([['ap-old-1', 'consumed', 'alice', '1:0', ['irreversible']]]);
    expect(await store.getOwner('t-old-2')).toEqual({
      pid: 4242,
      startTime: '777',
      host: 'h',
      serverPids: [4243],
      worker: 'w1',
      heartbeatAt: '2026-11-30T00:00:13.000Z',
    });
    expect([await store.killRequested('t-old-2'), await store.killRequested('t-old-1')]).toEqual([
      true,
      false,
    ]);
    expect(await store.getGlobalStop()).toEqual({ by: 'ops', at: '2026-11-30T00:00:16.000Z' });
    expect(
      (await store.listTaskSummaries()).map((s) => [s.taskId, s.status, s.latencyMs, s.steps, s.toolCalls]),
    ).toEqual([['t-old-1', 'succeeded', 11000, 2, 1]]);

    // Fencing (migration 2): the step recorded twice is numbered in order; the old owner is at epoch 0
    // and can be taken over like any other.
    expect((await store.listModelCalls('t-old-1')).map((c) => [c.step, c.attempt])).toEqual([
      [1, 1],
      [1, 2],
      [2, 1],
    ]);
    const old = await store.getOwner('t-old-2');
    expect(await store.getOwnership('t-old-2')).toEqual({ owner: old, epoch: 0, killRequested: true });
    expect(await store.getOwnership('t-old-1')).toEqual({ owner: null, epoch: 0, killRequested: false });
    expect(await store.claimOwner('t-old-2', old, { ...old!, worker: 'w2' })).toEqual({ ok: true, epoch: 1 });

    // The chain goes on from the old head.
    const next = await store.appendEvent('t-old-2', 'step', { i: 2 }, new Date('2026-11-30T00:00:17.000Z'));
    expect([next.seq, next.prevHash]).toEqual([
      6,
      '04f2d730d133ae8dfe947da103669ba02fe3a9f0790de946062658887b099eac',
    ]);
    expect(await store.verifyEvents()).toEqual({ ok: true, events: 6 });
  });

  it('four processes opening an old store at once: one migrates it, the others find it done', async () => {
    const { dir, file } = await storeBeforeVersions();
    const migrations = new URL('../dist/store/sqliteMigrations.js', import.meta.url).href;
    // Each child loads the store code, says so, and opens the file when told: all at the same moment.
    const script = `
      const [, migrations, file] = process.argv;
      const { openSqliteDatabase } = await import(migrations);
      process.stdout.write('ready\\n');
      process.stdin.once('data', () => {
        const { db, migration } = openSqliteDatabase(file);
        db.close();
        process.stdout.write(JSON.stringify(migration) + '\\n');
        process.exit(0);
      });`;
    const children = Array.from({ length: 4 }, () => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script, migrations, file], {
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      onTestFinished(() => void child.kill('SIGKILL'));
      const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      return { child, lines, exited };
    });
    for (const { lines } of children) expect((await lines.next()).value).toBe('ready');
    for (const { child } of children) child.stdin.write('go\n');
    const results = await Promise.all(
      children.map(async ({ lines, exited }) => ({
        migration: JSON.parse((await lines.next()).value as string) as { from: number; to: number },
        code: await exited,
      })),
    );
    expect(results.map((r) => r.code)).toEqual([0, 0, 0, 0]);
    expect(results.map((r) => r.migration.from).sort((a, b) => a - b)).toEqual([0, latest, latest, latest]);
    expect(results.every((r) => r.migration.to === latest)).toBe(true);
    expect(userVersion(file)).toBe(latest);
    const store = createSqliteTaskStore(dir);
    onTestFinished(() => store.close());
    expect(await store.verifyEvents()).toEqual({ ok: true, events: 5 });
  });

  it('reads the version again under the write lock: a process that saw an old version applies nothing twice', async () => {
    const file = path.join(await tempDir('keel-migrate-'), 'tasks.db');
    // Not idempotent on purpose: applying either twice fails.
    const migrations = ['CREATE TABLE a (x)', 'CREATE TABLE b (x)'];
    const slow = new Database(file);
    const fast = new Database(file);
    onTestFinished(() => {
      slow.close();
      fast.close();
    });
    expect(slow.pragma('user_version', { simple: true })).toBe(0);
    expect(migrateSqlite(fast, migrations)).toEqual({ from: 0, to: 2 });
    // `slow` saw version 0 before `fast` migrated; when it takes the lock it finds 2.
    expect(applyMigrations(slow, migrations)).toEqual({ from: 2, to: 2 });
  });

  it('version 4 backfills the cached input of tasks already summarised, and its triggers keep it', async () => {
    const file = path.join(await tempDir('keel-migrate-'), 'tasks.db');
    const db = new Database(file);
    onTestFinished(() => {
      db.close();
    });
    expect(applyMigrations(db, sqliteMigrations.slice(0, 3))).toEqual({ from: 0, to: 3 });
    const insert = db.prepare(
      `INSERT INTO tasks (id, type, title, mode, status, created_at, ended_at, config_hash, spec, run)
       VALUES (?, 'bugfix', 't', 'orchestrated', 'succeeded', ?, ?, 'h', '{}', ?)`,
    );
    const run = (cached?: number) =>
      JSON.stringify({
        steps: 2,
        tokens: { input: 1000, output: 10, ...(cached === undefined ? {} : { cachedInput: cached }) },
        costUsd: 0.01,
      });
    insert.run('t-1', '2026-12-01T00:00:00.000Z', '2026-12-01T00:00:01.000Z', run(400));
    insert.run('t-2', '2026-12-01T00:00:02.000Z', '2026-12-01T00:00:03.000Z', run());
    const cached = () =>
      db.prepare('SELECT task_id, cached_input_tokens FROM task_summaries ORDER BY task_id').all();
    expect(() => cached()).toThrow('no such column: cached_input_tokens');
    expect(migrateSqlite(db)).toEqual({ from: 3, to: latest });
    expect(cached()).toEqual([
      { task_id: 't-1', cached_input_tokens: 400 },
      { task_id: 't-2', cached_input_tokens: 0 },
    ]);
    insert.run('t-3', '2026-12-01T00:00:04.000Z', '2026-12-01T00:00:05.000Z', run(700));
    db.prepare('UPDATE tasks SET run = ? WHERE id = ?').run(run(50), 't-2');
    expect(cached()).toEqual([
      { task_id: 't-1', cached_input_tokens: 400 },
      { task_id: 't-2', cached_input_tokens: 50 },
      { task_id: 't-3', cached_input_tokens: 700 },
    ]);
  });

  it('a migration that fails leaves the database as it was', async () => {
    const { file } = await storeBeforeVersions();
    const db = new Database(file);
    onTestFinished(() => {
      db.close();
    });
    expect(() =>
      migrateSqlite(db, [...sqliteMigrations, 'CREATE TABLE half (x); SELECT no_such_function()']),
    ).toThrow('no such function: no_such_function');
    expect(db.pragma('user_version', { simple: true })).toBe(0);
    expect(db.prepare("SELECT name FROM sqlite_master WHERE name = 'half'").all()).toEqual([]);
    expect(db.prepare('SELECT count(*) AS n FROM tasks').get()).toEqual({ n: 2 });
  });

  it('keel says so, with the way out, when its store is newer than it', async () => {
    const repo = await createGitRepo({ files: { 'README.md': '# hello\n' } });
    // keel init keeps the state outside the project, under $XDG_STATE_HOME: the test's own.
    const env = { XDG_STATE_HOME: await tempDir('keel-xdg-') };
    expect((await keel(['init'], repo.dir, env)).code).toBe(0);
    expect((await keel(['runs'], repo.dir, env)).code).toBe(0);
    const projects = path.join(env.XDG_STATE_HOME, 'keel', 'projects');
    expect(readdirSync(projects)).toHaveLength(1);
    const state = path.join(projects, readdirSync(projects)[0]!);
    const db = new Database(path.join(state, 'tasks.db'));
    db.pragma(`user_version = ${latest + 1}`);
    db.close();
    expect(await keel(['runs'], repo.dir, env)).toEqual({
      code: 2,
      stdout: '',
      stderr: `keel: the task store ${path.join(state, 'tasks.db')} has schema version ${latest + 1}; this keel knows versions up to ${latest}\nhint: a newer keel wrote to it: run that version (or newer) on this state dir\n`,
    });
  });

  it('refuses a store that a newer keel migrated, and leaves it untouched', async () => {
    const { dir, file } = await storeBeforeVersions();
    const db = new Database(file);
    db.pragma(`user_version = ${latest + 1}`);
    db.close();
    expect(() => createSqliteTaskStore(dir)).toThrow(
      expect.objectContaining({
        code: 'PRECONDITION_FAILED',
        message: `the task store ${file} has schema version ${latest + 1}; this keel knows versions up to ${latest}`,
        hint: 'a newer keel wrote to it: run that version (or newer) on this state dir',
      }),
    );
    expect(userVersion(file)).toBe(latest + 1);
  });
});

describe.skipIf(testDatabaseUrl === undefined)('PostgreSQL task store migrations', () => {
  it('upgrades a database at version 1 in place: model calls numbered per step, owners at epoch 0', async () => {
    const url = await freshDatabase();
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    onTestFinished(() => pool.end());
    expect(await migratePostgres(pool, postgresMigrations.slice(0, 1))).toEqual([1]);
    for (const [step, error] of [
      [1, 'HTTP 500'],
      [1, null],
      [2, null],
    ] as const)
      await pool.query(
        `INSERT INTO model_calls (task_id, step, agent, provider, requested_model, system_sha256, reserved_input_tokens,
           reserved_output_tokens, input_tokens, output_tokens, cost_usd, latency_ms, started_at, error)
         VALUES ('t-1', $1, 'coding', 'playbook', 'playbook', 's', 1, 1, 1, 1, 0, 1, '2026-11-30T00:00:00.000Z', $2)`,
        [step, error],
      );
    const owner = { pid: 7, startTime: '7', host: 'h', serverPids: [], worker: 'w1' };
    await pool.query("INSERT INTO task_control (task_id, owner) VALUES ('t-1', $1), ('t-2', 'null')", [
      JSON.stringify(owner),
    ]);
    const store = await createPostgresTaskStore(url);
    onTestFinished(() => store.close());
    expect((await store.listModelCalls('t-1')).map((c) => [c.step, c.attempt, c.error])).toEqual([
      [1, 1, 'HTTP 500'],
      [1, 2, null],
      [2, 1, null],
    ]);
    expect(await store.getOwnership('t-1')).toEqual({ owner, epoch: 0, killRequested: false });
    expect(await store.getOwnership('t-2')).toEqual({ owner: null, epoch: 0, killRequested: false });
    expect(await store.claimOwner('t-1', owner, { ...owner, worker: 'w2' })).toEqual({ ok: true, epoch: 1 });
    expect(await store.writer('t-1', 1).releaseOwner()).toBe(true);
  });

  it('applies each migration once and refuses a database a newer keel migrated', async () => {
    const url = await freshDatabase();
    const pool = new pg.Pool({ connectionString: url, max: 1 });
    onTestFinished(() => pool.end());
    const all = await migratePostgres(pool);
    expect(all).toEqual(all.map((_, i) => i + 1));
    expect(await migratePostgres(pool)).toEqual([]);
    await pool.query("INSERT INTO keel_schema (version, applied_at) VALUES ($1, 'later')", [all.length + 1]);
    await expect(createPostgresTaskStore(url)).rejects.toMatchObject({
      code: 'PRECONDITION_FAILED',
      message: `the PostgreSQL task store has schema version ${all.length + 1}; this keel knows versions up to ${all.length}`,
    });
    // Not a connection problem: keel gives the migration's own message and hint.
    const repo = await createGitRepo({ files: { 'README.md': '# hello\n' } });
    expect((await keel(['init'], repo.dir)).code).toBe(0);
    expect(await keel(['runs'], repo.dir, { KEEL_DATABASE_URL: url })).toEqual({
      code: 2,
      stdout: '',
      stderr: `keel: the PostgreSQL task store has schema version ${all.length + 1}; this keel knows versions up to ${all.length}\nhint: a newer keel migrated it: run that version (or newer) against this database\n`,
    });
  });
});
