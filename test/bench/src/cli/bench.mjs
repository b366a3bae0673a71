// The control CLI's start-up, side by side with Node's own: `node -e 0`, `keel --version`, and
// `keel kill --all` typed to gone with ten tasks in flight (issue 20: a person's "one second").
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { killAllLatency } from '../supervisor/bench.mjs';
import { median } from '../stats.mjs';

const keelBin = fileURLToPath(new URL('../../node_modules/@keel/supervisor/dist/bin.js', import.meta.url));

/** Wall time of one process from spawn to exit, in ms. */
function timed(args) {
  const started = performance.now();
  const result = spawnSync(process.execPath, args, {
    stdio: 'ignore',
    env: { ...process.env, KEEL_CONFIG: '' },
  });
  if (result.status !== 0) throw new Error(`node ${args.join(' ')} exited ${result.status}`);
  return performance.now() - started;
}

export async function run({ log, workDir }) {
  const rounds = 21;
  const node = [];
  const version = [];
  // Interleaved, so a burst of load on the shared machine falls on both alike.
  for (let i = 0; i < rounds; i++) {
    node.push(timed(['-e', '0']));
    version.push(timed([keelBin, '--version']));
  }
  const nodeMs = median(node);
  const versionMs = median(version);
  log(`node -e 0 ${nodeMs.toFixed(0)} ms, keel --version ${versionMs.toFixed(0)} ms (medians of ${rounds})`);
  const kills = [];
  for (let i = 0; i < 3; i++) {
    const [row] = await killAllLatency({ log, workDir }, { tasks: 10, name: `kill-${i}` });
    kills.push(row);
  }
  const killMs = median(kills.map((row) => row.keel));
  return [
    {
      name: 'keel --version, spawn to exit (median of 21)',
      keel: versionMs,
      reference: nodeMs,
      unit: 'ms',
      ratio: versionMs / nodeMs,
      target: 'near node -e 0',
      note: `reference = node -e 0, median of ${rounds} interleaved runs`,
    },
    {
      name: 'keel kill --all, 10 tasks in flight: typed to every task stopped and every process gone (median of 3)',
      keel: killMs,
      reference: 1000,
      unit: 'ms',
      ratio: killMs / 1000,
      target: '< 1 s',
      note: kills.map((row, i) => `run ${i + 1}: ${row.keel.toFixed(0)} ms — ${row.note}`).join('\n    '),
    },
  ];
}
