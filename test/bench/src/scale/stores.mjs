// Keyed claim + complete per second: the kit's PostgreSQL idempotency store against its SQLite store
// on the same machine, each with its audit row written in the completion's transaction, as a server
// writes them. Sequential (one call at a time: the latency a single caller sees) and 16 callers at
// once (what a replica serving many clients sees). Rounds alternate so drift hits both sides.
import { mkdtempSync } from 'node:fs';
import path from 'node:path';
import { openStoreBackend } from '@keel/kit';

const result = { content: [{ type: 'text', text: 'ok' }], structuredContent: { ok: true } };

/** Claims and completes `count` fresh keys with `parallel` callers; seconds taken. */
async function claimComplete(store, { count, offset, parallel }) {
  const started = process.hrtime.bigint();
  let next = 0;
  const caller = async () => {
    for (let i = next++; i < count; i = next++) {
      const key = `key-${offset + i}`;
      const claim = await store.claim({
        scope: 'bench',
        key,
        fingerprint: 'f',
        owner: 'bench',
        leaseMs: 30_000,
        ttlMs: 86_400_000,
      });
      if (claim.kind !== 'claimed') throw new Error(`unexpected ${claim.kind}`);
      const audit = { server: 'bench', tool: 'write', args: { i }, outcome: 'ok', idempotencyKey: key };
      if (!(await store.complete('bench', key, claim.token, result, audit)))
        throw new Error('lost the claim');
    }
  };
  await Promise.all(Array.from({ length: parallel }, caller));
  return Number(process.hrtime.bigint() - started) / 1e9;
}

export async function storeRows({ log, workDir, databaseUrl }) {
  const sqlite = await openStoreBackend({
    store: undefined,
    stateDir: mkdtempSync(path.join(workDir, 'stores-')),
  });
  const postgres = await openStoreBackend({ store: databaseUrl, stateDir: workDir });
  const rows = [];
  try {
    let offset = 0;
    for (const parallel of [1, 16]) {
      const count = parallel === 1 ? 500 : 2000;
      // Warm both (statement caches, pool connections) before timing.
      await claimComplete(sqlite.idempotency, { count: 100, offset: (offset += 100_000), parallel });
      await claimComplete(postgres.idempotency, { count: 100, offset: (offset += 100_000), parallel });
      const seconds = { sqlite: 0, postgres: 0 };
      for (let round = 0; round < 3; round++) {
        for (const side of round % 2 === 0 ? ['sqlite', 'postgres'] : ['postgres', 'sqlite']) {
          const backend = side === 'sqlite' ? sqlite : postgres;
          seconds[side] += await claimComplete(backend.idempotency, {
            count,
            offset: (offset += 100_000),
            parallel,
          });
        }
      }
      const rate = { sqlite: (3 * count) / seconds.sqlite, postgres: (3 * count) / seconds.postgres };
      log(
        `claim+complete, ${parallel} caller(s): PostgreSQL ${rate.postgres.toFixed(0)}/s, SQLite ${rate.sqlite.toFixed(0)}/s`,
      );
      rows.push({
        name: `idempotency store: keyed claim + complete per second, ${parallel === 1 ? 'one caller' : `${parallel} callers at once`}, PostgreSQL / SQLite`,
        keel: rate.postgres,
        reference: rate.sqlite,
        unit: 'calls/s',
        ratio: rate.postgres / rate.sqlite,
        target: 'report',
        note: 'each completion writes its audit row in the same transaction on both; PostgreSQL over loopback TCP, SQLite WAL on the local disk',
      });
    }
  } finally {
    await sqlite.close();
    await postgres.close();
  }
  return rows;
}
