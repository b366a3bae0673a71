import type { AuditLog } from '../audit/auditLog.js';
import type { IdempotencyStore } from '../idempotency/store.js';
import type { StateStore } from '../state/stateStore.js';

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

    test('a claim of an owner known to be gone is recovered before its lease ends, and only that owner’s', async (store) => {
      await store.claim({ ...base, now: 1000 });
      t.expect(
        await store.claim({ ...base, owner: 'second', now: 1100, takeOverFrom: 'someone-else' }),
      ).toEqual({
        kind: 'in_progress',
        owner: 'me',
        leaseExpiresAt: 2000,
      });
      t.expect(await store.claim({ ...base, owner: 'second', now: 1100, takeOverFrom: 'me' })).toMatchObject({
        kind: 'recovered',
        previousOwner: 'me',
        attempts: 2,
      });
      t.expect(await store.claim({ ...base, owner: 'third', now: 1200, takeOverFrom: 'me' })).toEqual({
        kind: 'in_progress',
        owner: 'second',
        leaseExpiresAt: 2100,
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

/** Opens the state store under test for a namespace, on a clock the suite moves. */
export type StateStoreOpener = (namespace: string, options: { now: () => number }) => StateStore;

/**
 * The state store's contract, for any backend: versions, preconditions, expiry that never reuses a
 * version, all-or-none commits, prefix listing in key order, namespaces kept apart, keys refused, and
 * two connections never both taking a free key.
 */
export function stateStoreConformance(
  t: ConformanceTestApi,
  backend: ConformanceBackend<StateStoreOpener>,
): void {
  const test = (
    name: string,
    body: (
      store: StateStore,
      clock: { at: number },
      open: StateStoreOpener,
      another: () => Promise<StateStoreOpener>,
    ) => Promise<void>,
  ) =>
    t.it(name, async () => {
      const opened = await backend.open();
      const clock = { at: 1_000 };
      try {
        await body(opened.subject('deploy', { now: () => clock.at }), clock, opened.subject, () =>
          opened.another(),
        );
      } finally {
        await opened.close();
      }
    });

  t.describe('state store conformance', () => {
    test('puts, gets and versions a value', async (store, clock) => {
      t.expect(await store.get('plan/a')).toBeUndefined();
      t.expect(await store.put('plan/a', { n: 1 })).toEqual({
        ok: true,
        entry: { key: 'plan/a', value: { n: 1 }, version: 1, updatedAt: 1000, expiresAt: null },
      });
      clock.at = 2_000;
      await store.put('plan/a', { n: 2 });
      t.expect(await store.get('plan/a')).toEqual({
        key: 'plan/a',
        value: { n: 2 },
        version: 2,
        updatedAt: 2000,
        expiresAt: null,
      });
    });

    test('refuses a write whose version precondition fails, naming what is there', async (store) => {
      t.expect((await store.put('lock/x', 'me', { ifVersion: 0 })).ok).toBe(true);
      t.expect(await store.put('lock/x', 'you', { ifVersion: 0 })).toEqual({
        ok: false,
        key: 'lock/x',
        current: { key: 'lock/x', value: 'me', version: 1, updatedAt: 1000, expiresAt: null },
      });
      t.expect((await store.put('lock/x', 'me again', { ifVersion: 1 })).ok).toBe(true);
      t.expect((await store.delete('lock/x', { ifVersion: 1 })).ok).toBe(false);
      t.expect(await store.delete('lock/x', { ifVersion: 2 })).toEqual({ ok: true });
      t.expect(await store.get('lock/x')).toBeUndefined();
    });

    test('treats an expired entry as absent, and never reuses its version', async (store, clock) => {
      await store.put('lease', 'a', { ttlMs: 500 });
      clock.at = 1_499;
      t.expect((await store.get<string>('lease'))?.value).toBe('a');
      clock.at = 1_500;
      t.expect(await store.get('lease')).toBeUndefined();
      t.expect(await store.list({ prefix: 'lea', limit: 10 })).toEqual([]);
      t.expect(await store.put('lease', 'b', { ifVersion: 0, ttlMs: 500 })).toEqual({
        ok: true,
        entry: { key: 'lease', value: 'b', version: 2, updatedAt: 1500, expiresAt: 2000 },
      });
    });

    test('commits several writes all or none', async (store) => {
      await store.put('env/s', { generation: 1 });
      t.expect(
        await store.commit([
          { kind: 'put', key: 'release/s/r1', value: { id: 'r1' }, ifVersion: 0 },
          { kind: 'put', key: 'env/s', value: { generation: 2 }, ifVersion: 7 },
        ]),
      ).toEqual({
        ok: false,
        key: 'env/s',
        current: { key: 'env/s', value: { generation: 1 }, version: 1, updatedAt: 1000, expiresAt: null },
      });
      t.expect(await store.get('release/s/r1')).toBeUndefined();
      t.expect(
        await store.commit([
          { kind: 'put', key: 'release/s/r1', value: { id: 'r1' }, ifVersion: 0 },
          { kind: 'put', key: 'env/s', value: { generation: 2 }, ifVersion: 1 },
          { kind: 'delete', key: 'missing' },
        ]),
      ).toEqual({ ok: true, versions: { 'release/s/r1': 1, 'env/s': 2 } });
    });

    test('lists by prefix in key order (bytewise), with a limit and a position', async (store) => {
      for (const key of ['r/b', 'r/a', 'r/C', 'r/é', 'rx', 'q']) await store.put(key, key);
      const keys = async (options: { prefix: string; limit: number; after?: string }) =>
        (await store.list(options)).map((entry) => entry.key);
      t.expect(await keys({ prefix: 'r/', limit: 10 })).toEqual(['r/C', 'r/a', 'r/b', 'r/é']);
      t.expect(await keys({ prefix: 'r/', limit: 2 })).toEqual(['r/C', 'r/a']);
      t.expect(await keys({ prefix: 'r/', limit: 2, after: 'r/a' })).toEqual(['r/b', 'r/é']);
    });

    test('keeps namespaces apart', async (store, clock, open) => {
      const other = open('test-runner', { now: () => clock.at });
      await store.put('k', 'deploy');
      await other.put('k', 'runner');
      t.expect((await store.get<string>('k'))?.value).toBe('deploy');
      t.expect((await other.get<string>('k'))?.value).toBe('runner');
    });

    test('refuses keys it cannot store faithfully', async (store) => {
      const refused = async (attempt: () => Promise<unknown>) =>
        attempt().then(
          () => 'stored',
          (error: unknown) => (error instanceof TypeError ? 'TypeError' : String(error)),
        );
      t.expect(await refused(() => store.get(''))).toBe('TypeError');
      t.expect(await refused(() => store.put('a\0b', 1))).toBe('TypeError');
      t.expect(await refused(() => store.put('k'.repeat(513), 1))).toBe('TypeError');
    });

    test('two connections never both take a free key', async (store, clock, _open, another) => {
      const other = (await another())('deploy', { now: () => clock.at });
      const outcomes = new Set<string>();
      for (let i = 0; i < 100; i++) {
        const key = `lock/${i}`;
        const [first, second] = i % 2 === 0 ? [store, other] : [other, store];
        const [a, b] = await Promise.all([
          first.put(key, 'a', { ifVersion: 0 }),
          second.put(key, 'b', { ifVersion: 0 }),
        ]);
        outcomes.add(`${[a, b].filter((put) => put.ok).length} of 2 took it`);
      }
      t.expect([...outcomes]).toEqual(['1 of 2 took it']);
    });
  });
}
