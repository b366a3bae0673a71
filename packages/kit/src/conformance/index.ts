import type { AuditLog } from '../audit/auditLog.js';
import type { IdempotencyStore } from '../idempotency/store.js';

/**
 * The test API the suites run on: vitest's (or any runner's) `describe`, `it` and `expect`, passed in
 * so that importing this module loads no test runner and runs nothing.
 */
export interface ConformanceTestApi {
  describe(name: string, body: () => void): void;
  it(name: string, body: () => Promise<void>): void;
  // The suites use toEqual, toMatchObject, toBe, toBeUndefined and toHaveLength.
  expect(value: unknown): {
    toEqual(expected: unknown): void;
    toMatchObject(expected: object): void;
    toBe(expected: unknown): void;
    toBeUndefined(): void;
    toHaveLength(length: number): void;
  };
}

/** A fresh, empty backend for one test: the thing under test, a second connection to it, and cleanup. */
export interface ConformanceBackend<TThing> {
  open(): Promise<{ subject: TThing; another(): Promise<TThing>; close(): Promise<void> }>;
}

/**
 * The idempotency store's contract, for any backend (SQLite here; a shared database later): claim
 * once, replay, conflict, scopes, lease recovery and renewal, release, TTL and reaping, and two
 * connections never both winning a key.
 */
export function idempotencyStoreConformance(
  t: ConformanceTestApi,
  backend: ConformanceBackend<IdempotencyStore>,
): void {
  const base = { scope: 'srv', key: 'k1', fingerprint: 'f1', owner: 'me', leaseMs: 1000, ttlMs: 10_000 };
  const test = (
    name: string,
    body: (store: IdempotencyStore, another: () => Promise<IdempotencyStore>) => Promise<void>,
  ) =>
    t.it(name, async () => {
      const opened = await backend.open();
      try {
        await body(opened.subject, () => opened.another());
      } finally {
        await opened.close();
      }
    });
  const claimed = async (store: IdempotencyStore, request: Parameters<IdempotencyStore['claim']>[0]) => {
    const claim = await store.claim(request);
    if (claim.kind !== 'claimed') throw new Error(`expected claimed, got ${claim.kind}`);
    return claim.token;
  };

  t.describe('idempotency store conformance', () => {
    test('claims once, then replays the completed result', async (store) => {
      const token = await claimed(store, { ...base, now: 1000 });
      t.expect(await store.claim({ ...base, now: 1001 })).toEqual({
        kind: 'in_progress',
        owner: 'me',
        leaseExpiresAt: 2000,
      });
      t.expect(await store.complete('srv', 'k1', token, { answer: 42 })).toBe(true);
      t.expect(await store.claim({ ...base, owner: 'other' })).toMatchObject({
        kind: 'completed',
        result: { answer: 42 },
      });
    });

    test('refuses the same key with another fingerprint', async (store) => {
      await store.claim(base);
      t.expect(await store.claim({ ...base, fingerprint: 'f2' })).toEqual({
        kind: 'conflict',
        storedFingerprint: 'f1',
      });
    });

    test('keeps scopes apart', async (store) => {
      t.expect((await store.claim(base)).kind).toBe('claimed');
      t.expect((await store.claim({ ...base, scope: 'other-server' })).kind).toBe('claimed');
    });

    test('recovers a claim whose lease expired, once', async (store) => {
      await store.claim({ ...base, now: 1000 });
      t.expect(await store.claim({ ...base, owner: 'second', now: 2500 })).toMatchObject({
        kind: 'recovered',
        previousOwner: 'me',
        attempts: 2,
      });
      t.expect(await store.claim({ ...base, owner: 'third', now: 2600 })).toEqual({
        kind: 'in_progress',
        owner: 'second',
        leaseExpiresAt: 3500,
      });
    });

    test('a renewed lease is not recovered; a foreign token renews nothing', async (store) => {
      const token = await claimed(store, base);
      t.expect(await store.renew('srv', 'k1', token, 60_000)).toBe(true);
      t.expect((await store.claim({ ...base, owner: 'other', now: Date.now() + 30_000 })).kind).toBe(
        'in_progress',
      );
      t.expect(await store.renew('srv', 'k1', 'not-the-token', 60_000)).toBe(false);
    });

    test('release lets a retry run again; completing with a foreign token stores nothing', async (store) => {
      const token = await claimed(store, base);
      t.expect(await store.complete('srv', 'k1', 'not-the-token', 'x')).toBe(false);
      await store.release('srv', 'k1', token);
      t.expect((await store.claim(base)).kind).toBe('claimed');
    });

    test('completed records expire after the TTL and are reaped', async (store) => {
      await store.complete('srv', 'k1', await claimed(store, { ...base, ttlMs: 50 }), 'r');
      await store.complete('srv', 'k2', await claimed(store, { ...base, key: 'k2', ttlMs: 1_000_000 }), 'r2');
      t.expect(await store.reap(Date.now() + 10_000)).toBe(1);
      t.expect(await store.get('srv', 'k1')).toBeUndefined();
      t.expect(await store.get('srv', 'k2')).toMatchObject({ state: 'completed', result: 'r2' });
      // An expired key is free again even before the reaper runs.
      await store.complete('srv', 'k3', await claimed(store, { ...base, key: 'k3', ttlMs: 1 }), 'old');
      t.expect((await store.claim({ ...base, key: 'k3', now: Date.now() + 1000 })).kind).toBe('claimed');
    });

    test('two connections to one backend never both win a key', async (store, another) => {
      const other = await another();
      const outcomes = new Set<string>();
      for (let i = 0; i < 200; i++) {
        const key = `race-${i}`;
        const [first, second] = i % 2 === 0 ? [store, other] : [other, store];
        // Both claims are in flight at once: the backend, not the caller's ordering, must decide.
        const [a, b] = await Promise.all([
          first.claim({ ...base, key, owner: 'a' }),
          second.claim({ ...base, key, owner: 'b' }),
        ]);
        outcomes.add([a.kind, b.kind].sort().join('/'));
      }
      t.expect([...outcomes]).toEqual(['claimed/in_progress']);
    });
  });
}

/**
 * The audit log's contract, for any backend: rows chain from a genesis hash, verify passes on an
 * untouched log, and rows list in order.
 */
export function auditLogConformance(t: ConformanceTestApi, backend: ConformanceBackend<AuditLog>): void {
  const entry = (i: number) => ({
    server: 's',
    tool: 'write_file',
    args: { path: `f${i}` },
    outcome: 'ok' as const,
    idempotencyKey: `k${i}`,
  });
  t.describe('audit log conformance', () => {
    t.it('chains rows from the genesis hash, lists them in order and verifies', async () => {
      const opened = await backend.open();
      try {
        const log = opened.subject;
        for (let i = 1; i <= 3; i++) await log.append(entry(i));
        const rows = await log.list();
        t.expect(rows.map((row) => [row.seq, row.tool, row.args])).toEqual([
          [1, 'write_file', { path: 'f1' }],
          [2, 'write_file', { path: 'f2' }],
          [3, 'write_file', { path: 'f3' }],
        ]);
        t.expect(rows[0]!.prevHash).toBe('0'.repeat(64));
        t.expect(rows[1]!.prevHash).toBe(rows[0]!.hash);
        t.expect(await log.verify()).toEqual({ ok: true, rows: 3, head: rows[2]!.hash });
        t.expect(await log.list({ afterSeq: 1, limit: 1 })).toHaveLength(1);
      } finally {
        await opened.close();
      }
    });

    t.it('two connections appending at once keep one unbroken chain', async () => {
      const opened = await backend.open();
      try {
        const other = await opened.another();
        await Promise.all(
          Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? opened.subject : other).append(entry(i))),
        );
        t.expect(await opened.subject.verify()).toMatchObject({ ok: true, rows: 50 });
      } finally {
        await opened.close();
      }
    });
  });
}
