import { readFileSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { describe, expect, it, onTestFinished } from 'vitest';
import { tempDir } from '@keel/testing';
import { postgresMigrations } from '../src/store/postgresMigrations.js';
import { createPostgresTaskStore, migratePostgres } from '../src/store/postgresTaskStore.js';
import { createSqliteTaskStore } from '../src/store/sqliteTaskStore.js';
import type { ModelCallRecord, TaskStore } from '../src/store/taskStore.js';
import { freshDatabase, testDatabaseUrl } from './postgres.js';

const tools = [{ name: 'read_file', description: 'reads a file', inputSchema: { type: 'object' } }];
const system = { role: 'system', content: 'the system prompt' };
/** Step n's request: the system prompt, the task, and n results of 4 KB each (a growing conversation). */
const requestAt = (n: number) => ({
  messages: [
    system,
    { role: 'user', content: 'the task' },
    ...Array.from({ length: n }, (_, i) => ({
      role: 'tool',
      toolCallId: `c${i}`,
      toolName: 'read_file',
      content: `result ${i} `.padEnd(4096, 'x'),
      isError: false,
    })),
  ],
  tools,
  maxTokens: 100,
});
const call = (taskId: string, step: number, startedAt: string): ModelCallRecord => ({
  taskId,
  step,
  agent: 'coding',
  provider: 'openai-compatible',
  requestedModel: 'm',
  responseModel: 'm',
  systemSha256: 's',
  request: requestAt(step),
  raw: { ok: true },
  reply: { text: `reply ${step}` },
  reservedInputTokens: 1,
  reservedOutputTokens: 1,
  inputTokens: 1,
  outputTokens: 1,
  costUsd: 0,
  latencyMs: 1,
  startedAt,
  error: null,
});

const backends: Array<{
  name: string;
  skip?: string;
  open: () => Promise<{
    store: TaskStore;
    bytes: () => Promise<{ requests: number; bodies: number; blobs: number }>;
    /** Each body's reference count, by body. */
    refs: () => Promise<Map<string, number>>;
    /** Deletes the body rows whose text is one of `bodies` (what a purge or a lost write leaves). */
    drop: (bodies: string[]) => Promise<void>;
  }>;
}> = [
  {
    name: 'sqlite',
    open: async () => {
      const dir = await tempDir('keel-messages-');
      const store = createSqliteTaskStore(dir);
      onTestFinished(() => store.close());
      const file = path.join(dir, 'tasks.db');
      return {
        store,
        bytes: async () => {
          const db = new Database(file, { readonly: true });
          try {
            const row = db
              .prepare(
                `SELECT (SELECT coalesce(sum(length(request)), 0) FROM model_calls) AS requests,
                   (SELECT coalesce(sum(length(body)), 0) FROM message_blobs) AS bodies,
                   (SELECT count(*) FROM message_blobs) AS blobs`,
              )
              .get() as { requests: number; bodies: number; blobs: number };
            return row;
          } finally {
            db.close();
          }
        },
        refs: async () => {
          const db = new Database(file, { readonly: true });
          try {
            const rows = db.prepare('SELECT body, refs FROM message_blobs').all() as Array<{
              body: string;
              refs: number;
            }>;
            return new Map(rows.map((row) => [row.body, row.refs]));
          } finally {
            db.close();
          }
        },
        drop: async (bodies) => {
          const db = new Database(file);
          try {
            for (const body of bodies) db.prepare('DELETE FROM message_blobs WHERE body = ?').run(body);
          } finally {
            db.close();
          }
        },
      };
    },
  },
  {
    name: 'postgres',
    ...(testDatabaseUrl === undefined ? { skip: 'KEEL_TEST_DATABASE_URL is not set' } : {}),
    open: async () => {
      const url = await freshDatabase();
      const store = await createPostgresTaskStore(url);
      onTestFinished(() => store.close());
      const pool = new pg.Pool({ connectionString: url, max: 1 });
      onTestFinished(() => pool.end());
      return {
        store,
        bytes: async () => {
          const { rows } = await pool.query(
            `SELECT (SELECT coalesce(sum(length(request::text)), 0) FROM model_calls)::int AS requests,
               (SELECT coalesce(sum(length(body)), 0) FROM message_blobs)::int AS bodies,
               (SELECT count(*) FROM message_blobs)::int AS blobs`,
          );
          return rows[0] as { requests: number; bodies: number; blobs: number };
        },
        refs: async () => {
          const { rows } = await pool.query<{ body: string; refs: number }>(
            'SELECT body, refs FROM message_blobs',
          );
          return new Map(rows.map((row) => [row.body, Number(row.refs)]));
        },
        drop: async (bodies) => {
          for (const body of bodies) await pool.query('DELETE FROM message_blobs WHERE body = $1', [body]);
        },
      };
    },
  },
];

for (const backend of backends)
  describe.skipIf(backend.skip !== undefined)(`the message store (${backend.name})`, () => {
    it('stores each message and tool list once per task: a 40-step conversation grows linearly, and reads back whole', async () => {
      const { store, bytes } = await backend.open();
      const steps = 40;
      for (let step = 1; step <= steps; step++)
        await store.recordModelCall(
          call('t-1', step, `2026-12-01T00:00:${String(step).padStart(2, '0')}.000Z`),
        );
      const read = await store.listModelCalls('t-1');
      expect(read.map((c) => c.request)).toEqual(Array.from({ length: steps }, (_, i) => requestAt(i + 1)));
      const whole = Array.from({ length: steps }, (_, i) => JSON.stringify(requestAt(i + 1)).length).reduce(
        (a, b) => a + b,
      );
      const stored = await bytes();
      // The system prompt, the task, the tool list and 40 results: 43 bodies, each once.
      expect(stored.blobs).toBe(43);
      expect(stored.bodies).toBeLessThan(41 * 4200);
      expect((stored.requests + stored.bodies) / whole).toBeLessThan(0.1);
    });

    it('a conversation resent as the same objects, as the engine resends it: every body counted once per reference, one missing stored again', async () => {
      const { store, refs, drop } = await backend.open();
      // 70 steps (more references than one count raise names), the same message objects each time,
      // and one request that names a message twice.
      const conversation: unknown[] = [system, { role: 'user', content: 'the task' }];
      const requests: Array<{ messages: unknown[]; tools: unknown; maxTokens: number }> = [];
      for (let step = 1; step <= 70; step++) {
        conversation.push({ role: 'assistant', content: `turn ${step}`, toolCalls: [] });
        const messages = step === 5 ? [...conversation, conversation[2]] : [...conversation];
        requests.push({ messages, tools, maxTokens: 100 });
        await store.recordModelCall({
          ...call('t-1', step, '2026-12-01T00:00:00.000Z'),
          request: requests.at(-1),
        });
      }
      const expected = new Map<string, number>();
      for (const request of requests)
        for (const part of [...request.messages, request.tools]) {
          const body = JSON.stringify(part);
          expected.set(body, (expected.get(body) ?? 0) + 1);
        }
      expect(await refs()).toEqual(expected);
      expect(expected.get(JSON.stringify(system))).toBe(70);
      expect(expected.get(JSON.stringify(conversation[2]))).toBe(71);

      // A body this process believes stored but the database no longer has is stored again, whole.
      const lost = JSON.stringify(conversation[3]);
      await drop([lost]);
      conversation.push({ role: 'assistant', content: 'turn 71', toolCalls: [] });
      await store.recordModelCall({
        ...call('t-1', 71, '2026-12-01T00:00:00.000Z'),
        request: { messages: [...conversation], tools, maxTokens: 100 },
      });
      expect((await refs()).get(lost)).toBe(1);
      expect((await store.listModelCalls('t-1')).at(-1)?.request).toEqual({
        messages: JSON.parse(JSON.stringify(conversation)),
        tools,
        maxTokens: 100,
      });
    });

    it('a purge of older calls keeps the bodies newer calls still refer to, and drops the rest', async () => {
      const { store, bytes } = await backend.open();
      for (let step = 1; step <= 3; step++)
        await store.recordModelCall(call('t-1', step, `2026-12-0${step}T00:00:00.000Z`));
      // Steps 1 and 2 are past retention; step 3 refers to every body they did.
      expect(
        await store.purge(new Date('2026-12-03T00:00:00.000Z'), new Date('2026-12-10T00:00:00.000Z')),
      ).toEqual({
        modelCalls: 2,
        toolCalls: 0,
      });
      const read = await store.listModelCalls('t-1');
      expect(read.map((c) => c.request)).toEqual([null, null, requestAt(3)]);
      expect((await bytes()).blobs).toBe(6);
      await store.purge(new Date('2026-12-04T00:00:00.000Z'), new Date('2026-12-10T00:00:00.000Z'));
      expect(await bytes()).toEqual({ requests: 0, bodies: 0, blobs: 0 });
    });
  });

describe('existing stores convert', () => {
  it('SQLite: a store written before versions reads its requests back as they were, their bodies moved', async () => {
    const dir = await tempDir('keel-messages-migrate-');
    const file = path.join(dir, 'tasks.db');
    const db = new Database(file);
    db.exec(readFileSync(new URL('./fixtures/tasksBeforeVersions.sql', import.meta.url), 'utf8'));
    db.close();
    const store = createSqliteTaskStore(dir);
    onTestFinished(() => store.close());
    expect((await store.listModelCalls('t-old-1')).map((c) => c.request)).toEqual([
      { messages: [{ role: 'user', content: 'step 1' }] },
      { messages: [{ role: 'user', content: 'step 1' }] },
      { messages: [{ role: 'user', content: 'step 2' }] },
    ]);
    const check = new Database(file, { readonly: true });
    onTestFinished(() => {
      check.close();
    });
    expect(check.prepare('SELECT body, refs FROM message_blobs ORDER BY body').all()).toEqual([
      { body: '{"role":"user","content":"step 1"}', refs: 2 },
      { body: '{"role":"user","content":"step 2"}', refs: 1 },
    ]);
  });

  it.skipIf(testDatabaseUrl === undefined)(
    'PostgreSQL: a database at version 2 converts its requests in place, and reads them back as they were',
    async () => {
      const url = await freshDatabase();
      const pool = new pg.Pool({ connectionString: url, max: 1 });
      onTestFinished(() => pool.end());
      expect(await migratePostgres(pool, postgresMigrations.slice(0, 2))).toEqual([1, 2]);
      for (const step of [1, 2, 3])
        await pool.query(
          `INSERT INTO model_calls (task_id, step, agent, provider, requested_model, system_sha256, request,
             reserved_input_tokens, reserved_output_tokens, input_tokens, output_tokens, cost_usd, latency_ms, started_at)
           VALUES ('t-1', $1, 'coding', 'playbook', 'playbook', 's', $2, 1, 1, 1, 1, 0, 1, '2026-11-30T00:00:00.000Z')`,
          [step, JSON.stringify(requestAt(step))],
        );
      const store = await createPostgresTaskStore(url);
      onTestFinished(() => store.close());
      expect((await store.listModelCalls('t-1')).map((c) => c.request)).toEqual([1, 2, 3].map(requestAt));
      const { rows } = await pool.query('SELECT refs FROM message_blobs ORDER BY refs DESC, body');
      // system, task and tools in all three; result 0 in all three, 1 in two, 2 in one.
      expect(rows.map((r) => r.refs)).toEqual([3, 3, 3, 3, 2, 1]);
      // A new call of the same task refers to what is there (and adds what is new).
      await store.recordModelCall(call('t-1', 4, '2026-11-30T00:00:01.000Z'));
      expect((await store.listModelCalls('t-1')).at(-1)!.request).toEqual(requestAt(4));
    },
  );
});
