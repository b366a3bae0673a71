import { randomBytes } from 'node:crypto';
import { fail, ok, type Outcome, type StateOp, type StateStore } from '@keel/kit';
import type { RunRecord } from './record.js';

/**
 * Where runs live: in the kit's state store, so server processes sharing a state database (a state
 * dir, later a shared database) serve each other's runs and cache hits. A record holds its captured
 * output too: that is bounded (head + tail of `captureBytes` per stream) and a replica on another
 * machine needs it for `get_run`. The newest `maxRuns` are kept; older ones are pruned.
 */
export interface RunStore {
  /** Stores a run; `cacheable: false` keeps it for get_run without serving it as a cache hit. */
  save(record: RunRecord, options?: { cacheable?: boolean }): Promise<void>;
  get(runId: string): Promise<RunRecord | undefined>;
  lookup(cacheKey: string): Promise<RunRecord | undefined>;
}

const runIdPattern = /^run_[0-9a-f]{16}$/;

export function newRunId(): string {
  return `run_${randomBytes(8).toString('hex')}`;
}

export function isRunId(value: string): boolean {
  return runIdPattern.test(value);
}

/** An index entry: runs in the order they were stored, oldest first, so pruning reads only the front. */
interface Indexed {
  runId: string;
  cacheKey: string;
}

// Keys: `run/<runId>` the record, `cache/<cacheKey>` the run serving those inputs, and
// `order/<ms, zero-padded>/<runId>` the index that orders them.
const runKey = (runId: string) => `run/${runId}`;
const cacheKey = (key: string) => `cache/${key}`;
const orderKey = (at: number, runId: string) => `order/${String(at).padStart(15, '0')}/${runId}`;

/** How far past `maxRuns` one prune reaches; saves racing from several replicas leave a few more behind. */
const pruneSlack = 64;

export function createRunStore(
  store: StateStore,
  options: { maxRuns?: number; now?: () => number } = {},
): RunStore {
  const maxRuns = options.maxRuns ?? 200;
  const now = options.now ?? Date.now;

  const get = async (runId: string): Promise<RunRecord | undefined> =>
    isRunId(runId) ? (await store.get<RunRecord>(runKey(runId)))?.value : undefined;

  /** Deletes the oldest runs beyond `maxRuns`, with the cache entries that still point at them. */
  const prune = async () => {
    const indexed = await store.list<Indexed>({ prefix: 'order/', limit: maxRuns + pruneSlack });
    const excess = indexed.slice(0, Math.max(0, indexed.length - maxRuns));
    if (excess.length === 0) return;
    const ops: StateOp[] = [];
    for (const entry of excess) {
      ops.push({ kind: 'delete', key: entry.key }, { kind: 'delete', key: runKey(entry.value.runId) });
      const cached = await store.get<{ runId: string }>(cacheKey(entry.value.cacheKey));
      if (cached?.value.runId === entry.value.runId)
        ops.push({ kind: 'delete', key: cached.key, ifVersion: cached.version });
    }
    // A cache entry re-pointed meanwhile by another replica fails the commit: the next save prunes.
    await store.commit(ops);
  };

  return {
    async save(record, saveOptions = {}) {
      const indexed: Indexed = { runId: record.runId, cacheKey: record.cacheKey };
      const ops: StateOp[] = [
        { kind: 'put', key: runKey(record.runId), value: record },
        { kind: 'put', key: orderKey(now(), record.runId), value: indexed },
      ];
      if (saveOptions.cacheable !== false)
        ops.push({ kind: 'put', key: cacheKey(record.cacheKey), value: { runId: record.runId } });
      // Unconditional puts cannot conflict.
      await store.commit(ops);
      await prune();
    },
    get,
    async lookup(key) {
      const entry = await store.get<{ runId: string }>(cacheKey(key));
      if (entry === undefined) return undefined;
      const record = await get(entry.value.runId);
      return record?.cacheKey === key ? record : undefined;
    },
  };
}

/** A stored run by id, or NOT_FOUND with the way out. */
export async function loadRun(store: RunStore, runId: string): Promise<Outcome<RunRecord>> {
  const record = isRunId(runId) ? await store.get(runId) : undefined;
  if (record === undefined) {
    return fail('NOT_FOUND', `run '${runId}' was not found`, {
      hint: isRunId(runId)
        ? 'Runs are kept in the state store; older ones are pruned. Run the tests again with run_tests.'
        : 'Run ids look like run_0123456789abcdef; take one from a run_tests result.',
    });
  }
  return ok(record);
}
