import type pg from 'pg';
import { KeelError } from '@keel/kit/core';
import { genesisHash } from './rows.js';

/**
 * The PostgreSQL task store's schema, one migration per change, in order: each runs once inside a
 * transaction, and `keel_schema` lists the versions a database has. Never edit one that has
 * shipped; add the next.
 */
export const postgresMigrations: readonly string[] = [
  `CREATE TABLE tasks (
     id TEXT PRIMARY KEY, type TEXT NOT NULL, title TEXT NOT NULL, mode TEXT NOT NULL, status TEXT NOT NULL,
     created_at TEXT NOT NULL, ended_at TEXT, config_hash TEXT NOT NULL, spec JSONB NOT NULL,
     starting_state JSONB, run JSONB);
   CREATE INDEX tasks_created ON tasks (created_at);
   CREATE TABLE events (
     seq BIGINT PRIMARY KEY, task_id TEXT NOT NULL, at TEXT NOT NULL, type TEXT NOT NULL, data TEXT NOT NULL,
     prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
   CREATE INDEX events_task ON events (task_id, seq);
   CREATE TABLE chain_head (id INT PRIMARY KEY CHECK (id = 1), seq BIGINT NOT NULL, hash TEXT NOT NULL);
   INSERT INTO chain_head (id, seq, hash) VALUES (1, 0, '${genesisHash}');
   CREATE TABLE model_calls (
     id BIGSERIAL PRIMARY KEY, task_id TEXT NOT NULL, step INT NOT NULL, agent TEXT NOT NULL, provider TEXT NOT NULL,
     requested_model TEXT NOT NULL, response_model TEXT, system_sha256 TEXT NOT NULL, request JSONB, raw JSONB,
     reply JSONB, reserved_input_tokens INT NOT NULL, reserved_output_tokens INT NOT NULL, input_tokens INT NOT NULL,
     output_tokens INT NOT NULL, cost_usd DOUBLE PRECISION NOT NULL, latency_ms DOUBLE PRECISION NOT NULL,
     started_at TEXT NOT NULL, error TEXT, purged_at TEXT);
   CREATE INDEX model_calls_task ON model_calls (task_id, id);
   CREATE TABLE tool_calls (
     id BIGSERIAL PRIMARY KEY, task_id TEXT NOT NULL, step INT NOT NULL, call_index INT NOT NULL, agent TEXT NOT NULL,
     server TEXT NOT NULL, tool TEXT NOT NULL, idempotency_key TEXT, arguments JSONB, result JSONB,
     result_bytes INT NOT NULL, latency_ms DOUBLE PRECISION NOT NULL, outcome TEXT NOT NULL, error_code TEXT,
     irreversible BOOLEAN NOT NULL, effect JSONB, started_at TEXT NOT NULL, purged_at TEXT);
   CREATE INDEX tool_calls_task ON tool_calls (task_id, id);
   CREATE TABLE approvals (
     id TEXT PRIMARY KEY, task_id TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL, agent TEXT NOT NULL,
     step INT NOT NULL, call_index INT NOT NULL, server TEXT, tool TEXT, args_sha256 TEXT, arguments JSONB,
     reasons JSONB NOT NULL, summary TEXT NOT NULL, requested_at TEXT NOT NULL, expires_at TEXT NOT NULL,
     decided_at TEXT, decided_by TEXT, decision_reason TEXT, decision JSONB, consumed_by TEXT);
   CREATE INDEX approvals_task ON approvals (task_id, requested_at);
   CREATE TABLE task_control (task_id TEXT PRIMARY KEY, owner JSONB, kill_requested_at TEXT);
   CREATE TABLE control (key TEXT PRIMARY KEY, value TEXT NOT NULL);`,
  // 2: fencing, as SQLite's migration 2.
  `ALTER TABLE task_control ADD COLUMN epoch INT NOT NULL DEFAULT 0, ADD COLUMN owner_epoch INT;
   UPDATE task_control SET owner_epoch = 0 WHERE owner IS NOT NULL AND owner <> 'null'::jsonb;
   ALTER TABLE model_calls ADD COLUMN attempt INT NOT NULL DEFAULT 1;
   UPDATE model_calls SET attempt = numbered.attempt
     FROM (SELECT id, row_number() OVER (PARTITION BY task_id, step ORDER BY id) AS attempt FROM model_calls) AS numbered
     WHERE model_calls.id = numbered.id AND numbered.attempt > 1;
   CREATE UNIQUE INDEX model_calls_attempt ON model_calls (task_id, step, attempt);`,
  // 3: a message store that grows linearly, as SQLite's migration 3. Bodies moved here are hashed
  // over jsonb's text (new ones over canonical JSON): a hash only has to name its own body.
  `CREATE TABLE message_blobs (
     task_id TEXT NOT NULL, sha256 TEXT NOT NULL, body TEXT NOT NULL, refs INT NOT NULL,
     PRIMARY KEY (task_id, sha256));
   INSERT INTO message_blobs (task_id, sha256, body, refs)
     SELECT task_id, encode(sha256(convert_to(body, 'UTF8')), 'hex'), body, count(*)
     FROM (
       SELECT mc.task_id, m.value::text AS body
         FROM model_calls mc, jsonb_array_elements(mc.request->'messages') AS m
         WHERE jsonb_typeof(mc.request->'messages') = 'array'
       UNION ALL
       SELECT task_id, (request->'tools')::text
         FROM model_calls WHERE jsonb_typeof(request->'messages') = 'array' AND request->'tools' IS NOT NULL
     ) AS parts
     GROUP BY task_id, body;
   UPDATE model_calls SET request = (request - 'messages' - 'tools') || jsonb_build_object(
       '$refs', 1,
       'messages', (SELECT coalesce(jsonb_agg(encode(sha256(convert_to(m.value::text, 'UTF8')), 'hex') ORDER BY m.n), '[]'::jsonb)
                    FROM jsonb_array_elements(request->'messages') WITH ORDINALITY AS m(value, n)),
       'tools', CASE WHEN request->'tools' IS NULL THEN 'null'::jsonb
                ELSE to_jsonb(encode(sha256(convert_to((request->'tools')::text, 'UTF8')), 'hex')) END)
     WHERE jsonb_typeof(request->'messages') = 'array';`,
  // 4: a tool result's text stored once, as SQLite's migration 5 (store/toolResults.ts): the longest
  // top-level string of the structured result (64 characters or more) the text contains.
  `UPDATE tool_calls t SET result = jsonb_set(t.result, '{text}', jsonb_build_object(
       '$in', s.key,
       'before', left(t.result->>'text', s.pos - 1),
       'after', substr(t.result->>'text', s.pos + length(s.value))))
     FROM (
       SELECT DISTINCT ON (c.id) c.id, f.key, f.value #>> '{}' AS value,
         position(f.value #>> '{}' in c.result->>'text') AS pos
       FROM tool_calls c, jsonb_each(c.result->'structured') AS f
       WHERE jsonb_typeof(c.result->'structured') = 'object' AND jsonb_typeof(c.result->'text') = 'string'
         AND jsonb_typeof(f.value) = 'string' AND length(f.value #>> '{}') >= 64
         AND position(f.value #>> '{}' in c.result->>'text') > 0
       ORDER BY c.id, length(f.value #>> '{}') DESC, f.key
     ) AS s
     WHERE t.id = s.id;`,
];

/**
 * Brings a database up to the newest schema; safe to run twice, and from two processes at once (an
 * advisory lock serialises them). Returns the versions it applied. A database newer than this code
 * is refused rather than written to.
 */
export async function migratePostgres(
  pool: pg.Pool,
  migrations: readonly string[] = postgresMigrations,
): Promise<number[]> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock(775411)');
    await client.query(
      'CREATE TABLE IF NOT EXISTS keel_schema (version INT PRIMARY KEY, applied_at TEXT NOT NULL)',
    );
    const { rows } = await client.query<{ version: number }>('SELECT version FROM keel_schema');
    const done = new Set(rows.map((r) => r.version));
    const newest = Math.max(0, ...done);
    if (newest > migrations.length)
      throw new KeelError(
        'PRECONDITION_FAILED',
        `the PostgreSQL task store has schema version ${newest}; this keel knows versions up to ${migrations.length}`,
        { hint: 'a newer keel migrated it: run that version (or newer) against this database' },
      );
    const applied: number[] = [];
    for (const [index, sql] of migrations.entries()) {
      const version = index + 1;
      if (done.has(version)) continue;
      await client.query('BEGIN');
      try {
        await client.query(sql);
        // Stamped by the database: when a schema changed is the server's fact, not a caller's.
        await client.query('INSERT INTO keel_schema (version, applied_at) VALUES ($1, now()::text)', [
          version,
        ]);
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK');
        throw error;
      }
      applied.push(version);
    }
    return applied;
  } finally {
    await client.query('SELECT pg_advisory_unlock(775411)').catch(() => undefined);
    client.release();
  }
}
