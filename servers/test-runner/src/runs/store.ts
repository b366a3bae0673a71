import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { RunRecord } from './record.js';

/**
 * Where runs and the cache index live. Runs are JSON files (one per run, written once by
 * temp-file + rename, so a crash never leaves half a record) under `<stateDir>/test-runner/`; the
 * cache index maps an input hash to a run id. The kit's SQLite database is not reachable from a
 * server package, and a run is written once and read by id, which files do well. The newest
 * `maxRuns` are kept; older ones are pruned.
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

export function createFileRunStore(dir: string, options: { maxRuns?: number } = {}): RunStore {
  const runsDir = path.join(dir, 'runs');
  const cacheDir = path.join(dir, 'cache');
  const maxRuns = options.maxRuns ?? 200;
  let ready: Promise<void> | undefined;
  const ensure = () =>
    (ready ??= Promise.all([
      mkdir(runsDir, { recursive: true, mode: 0o700 }),
      mkdir(cacheDir, { recursive: true, mode: 0o700 }),
    ]).then(() => undefined));

  const writeAtomic = async (file: string, content: string) => {
    const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(temp, content, { mode: 0o600 });
    await rename(temp, file);
  };

  const get = async (runId: string): Promise<RunRecord | undefined> => {
    if (!isRunId(runId)) return undefined;
    try {
      return JSON.parse(await readFile(path.join(runsDir, `${runId}.json`), 'utf8')) as RunRecord;
    } catch {
      return undefined;
    }
  };

  const prune = async () => {
    const names = (await readdir(runsDir)).filter((n) => n.endsWith('.json'));
    if (names.length <= maxRuns) return;
    const dated = await Promise.all(
      names.map(async (name) => ({
        name,
        mtime: (await stat(path.join(runsDir, name)).catch(() => undefined))?.mtimeMs ?? 0,
      })),
    );
    dated.sort((a, b) => a.mtime - b.mtime);
    await Promise.all(
      dated.slice(0, dated.length - maxRuns).map((d) => rm(path.join(runsDir, d.name), { force: true })),
    );
  };

  return {
    async save(record, options = {}) {
      await ensure();
      await writeAtomic(path.join(runsDir, `${record.runId}.json`), JSON.stringify(record));
      if (options.cacheable !== false) {
        await writeAtomic(
          path.join(cacheDir, `${record.cacheKey}.json`),
          JSON.stringify({ runId: record.runId }),
        );
      }
      await prune();
    },
    get,
    async lookup(cacheKey) {
      try {
        const entry = JSON.parse(await readFile(path.join(cacheDir, `${cacheKey}.json`), 'utf8')) as {
          runId: string;
        };
        const record = await get(entry.runId);
        return record?.cacheKey === cacheKey ? record : undefined;
      } catch {
        return undefined;
      }
    },
  };
}
