import { mkdtempSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createSqliteIdempotencyStore, openStateDatabase } from '@keel/kit';
import Database from 'better-sqlite3';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { median } from '../stats.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const fixtureBin = fileURLToPath(
  new URL('../../node_modules/@keel/testing/dist/fixture/bin.js', import.meta.url),
);

async function connect(args) {
  const transport = new StdioClientTransport({ command: process.execPath, args, stderr: 'ignore' });
  const client = new Client({ name: 'keel-bench', version: '0' });
  await client.connect(transport);
  return { client, pid: transport.pid };
}

/** CPU seconds (user + system) a process has used so far, from /proc (Linux). */
function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function timeCalls(client, count) {
  const samples = [];
  for (let i = 0; i < count; i++) {
    const started = process.hrtime.bigint();
    const result = await client.callTool({ name: 'echo', arguments: { text: `ping ${i}` } });
    samples.push(Number(process.hrtime.bigint() - started) / 1e6);
    if (result.structuredContent?.text !== `ping ${i}`) throw new Error('echo returned the wrong text');
  }
  return samples;
}

/**
 * Kit overhead: a trivial tool through a Keel bin vs the same handler on a bare SDK server, over
 * stdio. Round trips of ~0.1 ms sit near this machine's noise floor, so rounds alternate which side
 * goes first, the ratio is also given per round, and the servers' own CPU per call (from /proc) is
 * reported beside the latency.
 */
async function kitOverhead({ log, workDir }) {
  const root = mkdtempSync(path.join(workDir, 'kit-root-'));
  const state = mkdtempSync(path.join(workDir, 'kit-state-'));
  const keel = await connect([fixtureBin, '--root', root, '--state-dir', state, '--log-level', 'error']);
  const bare = await connect([path.join(here, 'bareServer.mjs')]);
  await timeCalls(keel.client, 500);
  await timeCalls(bare.client, 500);
  const keelSamples = [];
  const bareSamples = [];
  const roundRatios = [];
  const cpu = { keel: 0, bare: 0 };
  const rounds = 30;
  const perRound = 150;
  for (let round = 0; round < rounds; round++) {
    const order =
      round % 2 === 0
        ? [
            ['keel', keel],
            ['bare', bare],
          ]
        : [
            ['bare', bare],
            ['keel', keel],
          ];
    const medians = {};
    for (const [name, side] of order) {
      const before = cpuSeconds(side.pid);
      const samples = await timeCalls(side.client, perRound);
      cpu[name] += cpuSeconds(side.pid) - before;
      (name === 'keel' ? keelSamples : bareSamples).push(...samples);
      medians[name] = median(samples);
    }
    roundRatios.push(medians.keel / medians.bare);
    if ((round + 1) % 10 === 0) log(`kit overhead: round ${round + 1}/${rounds}`);
  }
  await keel.client.close();
  await bare.client.close();
  const calls = rounds * perRound;
  const keelMedian = median(keelSamples);
  const bareMedian = median(bareSamples);
  return [
    {
      name: 'kit overhead: echo round-trip over stdio (median)',
      keel: keelMedian,
      reference: bareMedian,
      unit: 'ms',
      ratio: keelMedian / bareMedian,
      target: '<= 1.10',
      note: `${calls} calls each in ${rounds} alternating rounds; median of per-round ratios ${median(roundRatios).toFixed(3)}; bare v2 SDK McpServer as reference`,
    },
    {
      name: 'kit overhead: server CPU per echo call',
      keel: (cpu.keel / calls) * 1e6,
      reference: (cpu.bare / calls) * 1e6,
      unit: 'us',
      ratio: cpu.keel / cpu.bare,
      target: 'report',
      note: 'user + system time of each server process over the timed calls, from /proc (10 ms ticks)',
    },
  ];
}

/**
 * Store throughput: keyed claim + complete per second on one core, on a real WAL SQLite file, as a
 * ratio to the same two IMMEDIATE transactions written directly with better-sqlite3 (the absolute
 * rate follows the disk: 9.6k/s on one machine here, 23k/s on another). Rounds alternate.
 */
async function storeThroughput({ log, workDir }) {
  const state = openStateDatabase(mkdtempSync(path.join(workDir, 'kit-store-')));
  const store = createSqliteIdempotencyStore(state.db);
  const keel = async (count, offset) => {
    const started = process.hrtime.bigint();
    for (let i = 0; i < count; i++) {
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
      await store.complete('bench', key, claim.token, {
        content: [{ type: 'text', text: 'ok' }],
        structuredContent: { ok: true },
      });
    }
    return Number(process.hrtime.bigint() - started) / 1e9;
  };
  // The floor: one table, an insert-if-absent claim and an update, each its own IMMEDIATE
  // transaction, with the same pragmas the state database uses.
  const raw = new Database(path.join(mkdtempSync(path.join(workDir, 'kit-raw-')), 'raw.db'));
  raw.pragma('journal_mode = WAL');
  raw.pragma('synchronous = NORMAL');
  raw.exec(`CREATE TABLE claims (scope TEXT, key TEXT, fingerprint TEXT, state TEXT, owner TEXT, token TEXT,
    lease_expires_at INTEGER, result TEXT, PRIMARY KEY (scope, key))`);
  const select = raw.prepare('SELECT state, fingerprint FROM claims WHERE scope = ? AND key = ?');
  const insert = raw.prepare(
    "INSERT INTO claims (scope, key, fingerprint, state, owner, token, lease_expires_at) VALUES (?, ?, ?, 'in_progress', ?, ?, ?)",
  );
  const update = raw.prepare(
    "UPDATE claims SET state = 'completed', result = ? WHERE scope = ? AND key = ? AND token = ?",
  );
  const claimRaw = raw.transaction((key, token) => {
    if (select.get('bench', key) !== undefined) throw new Error('taken');
    insert.run('bench', key, 'f', 'bench', token, Date.now() + 30_000);
  });
  const completeRaw = raw.transaction((key, token, result) => update.run(result, 'bench', key, token));
  const direct = (count, offset) => {
    const started = process.hrtime.bigint();
    for (let i = 0; i < count; i++) {
      const key = `key-${offset + i}`;
      const token = `t${offset + i}`;
      claimRaw.immediate(key, token);
      completeRaw.immediate(
        key,
        token,
        JSON.stringify({ content: [{ type: 'text', text: 'ok' }], structuredContent: { ok: true } }),
      );
    }
    return Number(process.hrtime.bigint() - started) / 1e9;
  };
  await keel(2000, 0);
  direct(2000, 0);
  const keelRates = [];
  const rawRates = [];
  for (let round = 0; round < 6; round++) {
    const offset = 100_000 * (round + 1);
    const order = round % 2 === 0 ? ['keel', 'raw'] : ['raw', 'keel'];
    for (const side of order) {
      if (side === 'keel') keelRates.push(20_000 / (await keel(20_000, offset)));
      else rawRates.push(20_000 / direct(20_000, offset));
    }
    log(
      `store throughput: round ${round + 1}/6: keel ${Math.round(keelRates.at(-1))}/s, raw ${Math.round(rawRates.at(-1))}/s`,
    );
  }
  state.close();
  raw.close();
  const keelRate = median(keelRates);
  const rawRate = median(rawRates);
  return {
    name: 'idempotency store: keyed claim + complete per second / raw better-sqlite3',
    keel: keelRate,
    reference: rawRate,
    unit: 'ops/s',
    ratio: keelRate / rawRate,
    target: 'report (the absolute rate follows the disk)',
    note: 'WAL, synchronous=NORMAL, one IMMEDIATE transaction per claim and per complete on both sides',
  };
}

export async function run(context) {
  return [...(await kitOverhead(context)), await storeThroughput(context)];
}
