import { createSqliteStateStore, openStateDatabase } from '@keel/kit';
import { tempDir } from '@keel/testing';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { RunRecord } from '../../src/runs/record.js';
import { createRunStore, newRunId } from '../../src/runs/store.js';

function record(cacheKey: string): RunRecord {
  return {
    runId: newRunId(),
    createdAt: '2026-01-01T00:00:00.000Z',
    cacheKey,
    project: { id: '.:vitest', dir: '.', framework: 'vitest' },
    selection: { files: [] },
    outcome: 'passed',
    totals: { total: 1, passed: 1, failed: 0, skipped: 0 },
    durationMs: 1,
    exitCode: 0,
    command: ['node'],
    failures: [],
    failedSelectors: [],
    passedSelectors: ['a'],
    errors: [],
    files: [],
    stdout: '',
    stderr: '',
  };
}

describe('the run store on the state store', () => {
  it('finds runs by id and by cache key, keeps uncacheable runs out of the index, and prunes the oldest', async () => {
    const state = openStateDatabase(await tempDir());
    onTestFinished(() => state.close());
    const kv = createSqliteStateStore(state.db, 'test-runner');
    let clock = 1000;
    const store = createRunStore(kv, { maxRuns: 2, now: () => clock++ });
    const first = record('k1');
    const timedOut = record('k2');
    await store.save(first);
    await store.save(timedOut, { cacheable: false });
    expect(await store.get(first.runId)).toEqual(first);
    expect(await store.lookup('k1')).toEqual(first);
    expect(await store.get(timedOut.runId)).toEqual(timedOut);
    expect(await store.lookup('k2')).toBeUndefined();

    const third = record('k3');
    await store.save(third);
    expect(await store.get(first.runId)).toBeUndefined();
    expect(await store.lookup('k1')).toBeUndefined();
    expect(await store.lookup('k3')).toEqual(third);
    // What is left: two runs, their index entries in save order, and the one cache entry still served.
    expect((await kv.list({ prefix: '', limit: 100 })).map((entry) => entry.key)).toEqual(
      [
        'cache/k3',
        `order/000000000001001/${timedOut.runId}`,
        `order/000000000001002/${third.runId}`,
        `run/${third.runId}`,
        `run/${timedOut.runId}`,
      ].sort(),
    );
    expect(await store.get('../../etc/passwd')).toBeUndefined();
  });

  it('keeps a cache entry that a newer run took over when the older run is pruned', async () => {
    const state = openStateDatabase(await tempDir());
    onTestFinished(() => state.close());
    let clock = 1000;
    const store = createRunStore(createSqliteStateStore(state.db, 'test-runner'), {
      maxRuns: 1,
      now: () => clock++,
    });
    const older = record('same');
    const newer = record('same');
    await store.save(older);
    await store.save(newer);
    expect(await store.get(older.runId)).toBeUndefined();
    expect(await store.lookup('same')).toEqual(newer);
  });
});
