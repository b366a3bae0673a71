// The peer harnesses live in their own package (test/bench/peers), outside the pnpm workspace, so
// langchain and the Agents SDK never land in a `pnpm install` of the repository. The first
// `pnpm bench harness` installs them from their lockfile, exactly as pinned.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const peersDir = fileURLToPath(new URL('../../peers/', import.meta.url));

const pinned = () => JSON.parse(readFileSync(path.join(peersDir, 'package.json'), 'utf8')).dependencies;

/** The installed version of each pinned dependency, or what is missing or different. */
function mismatches() {
  const out = [];
  for (const [name, version] of Object.entries(pinned())) {
    const manifest = path.join(peersDir, 'node_modules', name, 'package.json');
    const installed = existsSync(manifest) ? JSON.parse(readFileSync(manifest, 'utf8')).version : undefined;
    if (installed !== version) out.push(`${name} ${installed ?? 'missing'} (pinned ${version})`);
  }
  return out;
}

/** Installs the peers from their lockfile unless exactly the pinned versions are there; returns them. */
export function ensurePeers(log) {
  const before = mismatches();
  if (before.length > 0) {
    log(`installing the peer harnesses (${before.join(', ')})`);
    const result = spawnSync(
      'pnpm',
      ['install', '--dir', peersDir, '--ignore-workspace', '--frozen-lockfile', '--reporter=append-only'],
      { stdio: ['ignore', 'inherit', 'inherit'], env: process.env },
    );
    if (result.error !== undefined || result.status !== 0)
      throw new Error(
        `installing the peers failed (${result.error?.message ?? `exit ${result.status}`}); run: pnpm install --dir test/bench/peers --ignore-workspace --frozen-lockfile`,
      );
    const after = mismatches();
    if (after.length > 0)
      throw new Error(`the peers' lockfile does not give the pinned versions: ${after.join(', ')}`);
  }
  return pinned();
}
