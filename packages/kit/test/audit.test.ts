import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createAuditLog } from '../src/audit/auditLog.js';
import { redact } from '../src/audit/redact.js';
import { auditLogConformance } from '../src/conformance/index.js';
import { openStateDatabase, type StateDatabase } from '../src/stateDir.js';

let dir: string;
let state: StateDatabase;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'keel-audit-'));
  state = openStateDatabase(dir);
});
afterEach(async () => {
  state.close();
  await rm(dir, { recursive: true, force: true });
});

auditLogConformance(
  { describe, it, expect },
  {
    async open() {
      const dir = await mkdtemp(path.join(tmpdir(), 'keel-audit-conformance-'));
      const opened: StateDatabase[] = [openStateDatabase(dir)];
      return {
        subject: createAuditLog(opened[0]!.db),
        async another() {
          const second = openStateDatabase(dir);
          opened.push(second);
          return createAuditLog(second.db);
        },
        async close() {
          for (const one of opened) one.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  },
);

async function fill(count: number) {
  const log = createAuditLog(state.db);
  for (let i = 1; i <= count; i++)
    await log.append({
      server: 's',
      tool: 'write_file',
      args: { path: `f${i}` },
      outcome: 'ok',
      idempotencyKey: `k${i}`,
    });
  return log;
}

describe('audit log', () => {
  it('refuses UPDATE and DELETE through SQLite', async () => {
    await fill(1);
    expect(() => state.db.prepare("UPDATE audit_log SET tool = 'x'").run()).toThrow(
      'audit_log is append-only',
    );
    expect(() => state.db.prepare('DELETE FROM audit_log').run()).toThrow('audit_log is append-only');
  });

  it('catches a row altered in the database file by another process', async () => {
    await fill(5);
    // What an attacker with the file can do: drop the guard, edit a row, put the guard back.
    const raw = new Database(path.join(dir, 'keel.db'));
    raw.exec('DROP TRIGGER audit_log_no_update');
    raw.prepare(`UPDATE audit_log SET args = '{"path":"innocent"}' WHERE seq = 3`).run();
    raw.close();
    expect(await createAuditLog(state.db).verify()).toEqual({
      ok: false,
      rows: 2,
      firstBadSeq: 3,
      reason: 'row 3 was altered after it was written',
    });
  });

  it('catches a deleted row', async () => {
    await fill(4);
    const raw = new Database(path.join(dir, 'keel.db'));
    raw.exec('DROP TRIGGER audit_log_no_delete');
    raw.prepare('DELETE FROM audit_log WHERE seq = 2').run();
    raw.close();
    expect(await createAuditLog(state.db).verify()).toEqual({
      ok: false,
      rows: 1,
      firstBadSeq: 2,
      reason: 'row 2 is missing (next row is 3)',
    });
  });

  it('catches a row whose hash was recomputed but no longer chains', async () => {
    const log = await fill(3);
    const row2 = (await log.list())[1]!;
    const raw = new Database(path.join(dir, 'keel.db'));
    raw.exec('DROP TRIGGER audit_log_no_update');
    raw.prepare('UPDATE audit_log SET prev_hash = ? WHERE seq = 2').run('f'.repeat(64));
    raw.close();
    const result = await createAuditLog(state.db).verify();
    expect(result).toEqual({ ok: false, rows: 1, firstBadSeq: 2, reason: 'row 2 does not follow row 1' });
    expect(row2.seq).toBe(2);
  });
});

describe('redaction', () => {
  it('hides secrets by name and by shape, and shrinks long strings', () => {
    const long = 'x'.repeat(600);
    expect(
      redact({
        path: 'src/a.ts',
        apiKey: 'abc',
        github_token: 'abc',
        clientSecret: 'abc',
        password: 'hunter2',
        author: 'Ada',
        maxTokens: 5,
        idempotencyKey: 'k-1',
        headers: { Authorization: 'Bearer abcdefghijklmnopqrstuvwxyz' },
        note: 'push with ghp_abcdefghijklmnopqrstuvwxyz0123456789',
        url: 'https://user:pass@example.com/repo.git',
        content: long,
        list: ['plain', 'sk-abcdefghijklmnopqrstuv'],
      }),
    ).toEqual({
      path: 'src/a.ts',
      apiKey: '[REDACTED]',
      github_token: '[REDACTED]',
      clientSecret: '[REDACTED]',
      password: '[REDACTED]',
      author: 'Ada',
      maxTokens: 5,
      idempotencyKey: 'k-1',
      headers: { Authorization: '[REDACTED]' },
      note: '[REDACTED]',
      url: '[REDACTED]',
      content: {
        redacted: 'long-string',
        bytes: 600,
        sha256: createHash('sha256').update(long).digest('hex'),
      },
      list: ['plain', '[REDACTED]'],
    });
  });
});
