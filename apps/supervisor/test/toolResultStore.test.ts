import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { tempDir } from '@keel/testing';
import { migratePostgres, postgresMigrations } from '../src/store/postgresMigrations.js';
import { createPostgresTaskStore } from '../src/store/postgresTaskStore.js';
import { applyMigrations, migrateSqlite, sqliteMigrations } from '../src/store/sqliteMigrations.js';
import { createSqliteTaskStore } from '../src/store/sqliteTaskStore.js';
import type { ToolCallRecord } from '../src/store/taskStore.js';
import { resultFromStored, storedResult } from '../src/store/toolResults.js';
import { freshDatabase, sql, testDatabaseUrl } from './postgres.js';

const content = `${'export const line = 1;\n'.repeat(40)}`;
/** A read_file result as the engine records it: the text is the file's content, the structured result holds it too. */
const readResult = {
  text: `app/math.js (920 B)\n${content}[end]`,
  structured: { path: 'app/math.js', size: 920, content, sha256: 'a'.repeat(64) },
  error: null,
};
const storedRead = {
  text: { $in: 'content', before: 'app/math.js (920 B)\n', after: '[end]' },
  structured: readResult.structured,
  error: null,
};

const record = (taskId: string, result: unknown): ToolCallRecord => ({
  taskId,
  step: 1,
  callIndex: 0,
  agent: 'coding',
  server: 'filesystem',
  tool: 'read_file',
  idempotencyKey: null,
  arguments: { path: 'app/math.js' },
  result,
  resultBytes: 920,
  latencyMs: 1,
  outcome: 'ok',
  errorCode: null,
  irreversible: false,
  effect: null,
  startedAt: '2026-12-01T00:00:00.000Z',
});

const task = (id: string) => ({
  id,
  type: 'bugfix',
  title: id,
  mode: 'orchestrated' as const,
  status: 'running' as const,
  createdAt: '2026-12-01T00:00:00.000Z',
  endedAt: null,
  configHash: 'c'.repeat(64),
  spec: {},
  startingState: null,
  run: null,
});

describe('a tool result stored once', () => {
  it('keeps only what surrounds the longest structured string the text contains, and gives the text back whole', () => {
    expect(storedResult(readResult)).toEqual(storedRead);
    expect(resultFromStored(storedRead)).toEqual(readResult);
    // Nothing shared, or nothing long enough, or no structured result: stored as it is.
    const short = { text: 'clean', structured: { branch: 'main' }, error: null };
    expect(storedResult(short)).toBe(short);
    const failure = { error: 'server gone' };
    expect(storedResult(failure)).toBe(failure);
    expect(resultFromStored(failure)).toBe(failure);
    const elsewhere = { text: 'x'.repeat(100), structured: { content: 'y'.repeat(100) }, error: null };
    expect(storedResult(elsewhere)).toBe(elsewhere);
  });

  it('SQLite: the row holds the compact form, every reader the result as recorded; migration 5 converts old rows', async () => {
    const dir = await tempDir('keel-results-');
    const file = path.join(dir, 'tasks.db');
    // A store as migration 4 left it, with a tool call written the old way (text and content both whole).
    const old = new Database(file);
    applyMigrations(old, sqliteMigrations.slice(0, 4));
    old
      .prepare(
        `INSERT INTO tasks (id, type, title, mode, status, created_at, config_hash, spec)
         VALUES ('t-old', 'bugfix', 't', 'orchestrated', 'running', '2026-12-01T00:00:00.000Z', 'h', '{}')`,
      )
      .run();
    old
      .prepare(
        `INSERT INTO tool_calls (task_id, step, call_index, agent, server, tool, arguments, result, result_bytes,
           latency_ms, outcome, irreversible, started_at)
         VALUES ('t-old', 1, 0, 'coding', 'filesystem', 'read_file', '{}', ?, 920, 1, 'ok', 0, '2026-12-01T00:00:00.000Z')`,
      )
      .run(JSON.stringify(readResult));
    expect(migrateSqlite(old)).toEqual({ from: 4, to: sqliteMigrations.length });
    old.close();

    const store = createSqliteTaskStore(dir);
    onTestFinished(() => store.close());
    await store.createTask(task('t-new'));
    await store.recordToolCall(record('t-new', readResult));
    const raw = new Database(file, { readonly: true });
    onTestFinished(() => {
      raw.close();
    });
    const rows = raw.prepare('SELECT task_id, result FROM tool_calls ORDER BY id').all() as Array<{
      task_id: string;
      result: string;
    }>;
    expect(rows.map((r) => [r.task_id, JSON.parse(r.result)])).toEqual([
      ['t-old', storedRead],
      ['t-new', storedRead],
    ]);
    expect(rows.map((r) => r.result.length)).toEqual([
      JSON.stringify(storedRead).length,
      JSON.stringify(storedRead).length,
    ]);
    expect((await store.listToolCalls('t-old')).map((c) => c.result)).toEqual([readResult]);
    expect((await store.listToolCalls('t-new')).map((c) => c.result)).toEqual([readResult]);
  });

  it.skipIf(testDatabaseUrl === undefined)(
    'PostgreSQL: the same compact form, and migration 4 converts old rows as SQLite does',
    async () => {
      const url = await freshDatabase();
      const pool = new pg.Pool({ connectionString: url });
      onTestFinished(() => pool.end());
      await migratePostgres(pool, postgresMigrations.slice(0, 3));
      await sql(
        url,
        `INSERT INTO tasks (id, type, title, mode, status, created_at, config_hash, spec)
         VALUES ('t-old', 'bugfix', 't', 'orchestrated', 'running', '2026-12-01T00:00:00.000Z', 'h', '{}')`,
      );
      await sql(
        url,
        `INSERT INTO tool_calls (task_id, step, call_index, agent, server, tool, arguments, result, result_bytes,
           latency_ms, outcome, irreversible, started_at)
         VALUES ('t-old', 1, 0, 'coding', 'filesystem', 'read_file', '{}', $1, 920, 1, 'ok', false, '2026-12-01T00:00:00.000Z')`,
        [JSON.stringify(readResult)],
      );
      expect(await migratePostgres(pool)).toEqual([4]);
      const store = await createPostgresTaskStore(url);
      onTestFinished(() => store.close());
      await store.createTask(task('t-new'));
      await store.recordToolCall(record('t-new', readResult));
      const rows = await sql<{ task_id: string; result: unknown }>(
        url,
        'SELECT task_id, result FROM tool_calls ORDER BY id',
      );
      expect(rows.map((r) => [r.task_id, r.result])).toEqual([
        ['t-old', storedRead],
        ['t-new', storedRead],
      ]);
      expect((await store.listToolCalls('t-old')).map((c) => c.result)).toEqual([readResult]);
      expect((await store.listToolCalls('t-new')).map((c) => c.result)).toEqual([readResult]);
    },
  );
});
