import { readdir, utimes } from 'node:fs/promises';
import path from 'node:path';
import { tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import type { RunRecord } from '../../src/runs/record.js';
import { createFileRunStore, newRunId } from '../../src/runs/store.js';

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

describe('the file run store', () => {
  it('finds runs by id and by cache key, keeps uncacheable runs out of the index, and prunes the oldest', async () => {
    const dir = await tempDir();
    const store = createFileRunStore(dir, { maxRuns: 2 });
    const first = record('k1');
    const timedOut = record('k2');
    await store.save(first);
    await store.save(timedOut, { cacheable: false });
    expect(await store.get(first.runId)).toEqual(first);
    expect(await store.lookup('k1')).toEqual(first);
    expect(await store.get(timedOut.runId)).toEqual(timedOut);
    expect(await store.lookup('k2')).toBeUndefined();

    await utimes(path.join(dir, 'runs', `${first.runId}.json`), new Date(1000), new Date(1000));
    const third = record('k3');
    await store.save(third);
    expect(await store.get(first.runId)).toBeUndefined();
    expect(await store.lookup('k1')).toBeUndefined();
    expect((await readdir(path.join(dir, 'runs'))).sort()).toEqual(
      [`${third.runId}.json`, `${timedOut.runId}.json`].sort(),
    );
    expect(await store.get('../../etc/passwd')).toBeUndefined();
  });
});
