// The deploy server's directory target, driven through its bin over stdio: an incremental release of
// a 5,000-file build with 1% changed (unchanged files hard-linked to the previous release) against a
// plain full copy of the same tree, and a poller reading through `current` while 50 releases go live.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, lstat, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { median } from '../stats.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const deployBin = path.join(here, '..', '..', '..', '..', 'servers', 'deploy', 'dist', 'bin.js');
const staticServerScript = path.join(here, 'staticServer.mjs');

const seed = 20261130;
const fileCount = 5000;
const filesPerDir = 100;
const changedPerRelease = fileCount / 100;
const rounds = Number(process.env.KEEL_BENCH_DEPLOY_ROUNDS ?? 5);
const switches = 50;
const pollers = 4;

/** A seeded PRNG (mulberry32) giving 32-bit words, so a run can be repeated exactly. */
function mulberry32(state) {
  let a = state >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

const fileOf = (index) =>
  `assets/pkg-${String(Math.floor(index / filesPerDir)).padStart(2, '0')}/chunk-${String(index).padStart(4, '0')}.js`;

/** File `index` at `version`: 1–64 KiB of random bytes, the same on every run. */
function contentOf(index, version) {
  const next = mulberry32(seed ^ Math.imul(index + 1, 0x9e3779b1) ^ Math.imul(version + 1, 0x85ebca6b));
  const size = 1024 + (next() % (63 * 1024 + 1));
  const words = new Uint32Array(Math.ceil(size / 4));
  for (let i = 0; i < words.length; i++) words[i] = next();
  return Buffer.from(words.buffer, 0, size);
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

/** `count` distinct file indices. */
function pick(next, count) {
  const chosen = new Set();
  while (chosen.size < count) chosen.add(next() % fileCount);
  return [...chosen];
}

async function forEachLimited(items, limit, fn) {
  for (let i = 0; i < items.length; i += limit) await Promise.all(items.slice(i, i + limit).map(fn));
}

/** The build directory, with the version each file is at. */
async function createBuild(dir) {
  const versions = Array.from({ length: fileCount }, () => 0);
  for (let d = 0; d < fileCount / filesPerDir; d++)
    await mkdir(path.dirname(path.join(dir, fileOf(d * filesPerDir))), { recursive: true });
  await forEachLimited([...versions.keys()], 64, (index) =>
    writeFile(path.join(dir, fileOf(index)), contentOf(index, 0)),
  );
  return {
    dir,
    versions,
    async set(index, version) {
      versions[index] = version;
      await writeFile(path.join(dir, fileOf(index)), contentOf(index, version));
    },
    marker: (label) => writeFile(path.join(dir, 'release.txt'), `${label}\n`),
  };
}

/** Every entry under `root` (files and directories), by relative path, with its lstat. */
async function walk(root) {
  const entries = new Map();
  const pending = [''];
  while (pending.length > 0) {
    const relative = pending.pop();
    for (const dirent of await readdir(path.join(root, relative), { withFileTypes: true })) {
      const rel = relative === '' ? dirent.name : `${relative}/${dirent.name}`;
      entries.set(rel, await lstat(path.join(root, rel)));
      if (dirent.isDirectory()) pending.push(rel);
    }
  }
  return entries;
}

/**
 * What a tree put on disk: every inode it does not share with `previous` (a file hard-linked to the
 * same path there is the same inode), as allocated blocks, and its files' count and apparent bytes.
 */
function landed(tree, previous) {
  const out = { blocks: 0, files: 0, bytes: 0, linked: 0 };
  for (const [rel, stat] of tree) {
    if (stat.isFile() && previous?.get(rel)?.ino === stat.ino) {
      out.linked++;
      continue;
    }
    out.blocks += stat.blocks * 512;
    if (stat.isFile()) {
      out.files++;
      out.bytes += stat.size;
    }
  }
  return out;
}

/** Flushes dirty pages, so one measurement's writeback does not land in the next one's time. */
const sync = () => execFileSync('sync');

async function connect(projectDir, configFile, stateDir) {
  if (!existsSync(deployBin)) throw new Error(`${deployBin} is missing: run pnpm build first`);
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [
      deployBin,
      '--root',
      projectDir,
      '--config',
      configFile,
      '--state-dir',
      stateDir,
      '--log-level',
      'error',
      '--timeout-ms',
      '600000',
    ],
    stderr: 'ignore',
  });
  const client = new Client({ name: 'keel-bench', version: '0.0.0' });
  await client.connect(transport);
  return client;
}

async function call(client, name, args) {
  const result = await client.callTool({ name, arguments: args }, { timeout: 600_000 });
  if (result.isError) throw new Error(`${name} failed: ${result.content?.[0]?.text}`);
  return result.structuredContent;
}

/** plan_deploy then apply_deploy for one environment, each timed from the client. */
async function release(client, environment) {
  let started = performance.now();
  const plan = await call(client, 'plan_deploy', { environment, maxPaths: 1 });
  const planMs = performance.now() - started;
  started = performance.now();
  const applied = await call(client, 'apply_deploy', { planId: plan.planId });
  const applyMs = performance.now() - started;
  if (applied.status !== 'live' || applied.current !== applied.releaseId)
    throw new Error(`apply_deploy left ${environment} ${applied.status} at ${applied.current}`);
  return { plan, applied, planMs, applyMs };
}

const round = (n, digits = 3) => Number(n.toFixed(digits));
const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(2)} MiB`;

export async function run({ log, workDir }) {
  const next = mulberry32(seed);
  const project = path.join(workDir, 'project');
  const deploys = path.join(workDir, 'deploys');
  const configFile = path.join(project, 'keel.deploy.json');
  const releaseDir = (environment, id) => path.join(deploys, environment, 'releases', id);
  const manifestFile = (environment, id) =>
    path.join(deploys, environment, '.keel', 'manifests', `${id}.json`);

  log(`generating a ${fileCount}-file build (1–64 KiB each, seed ${seed})`);
  const build = await createBuild(path.join(project, 'dist'));
  await build.marker('base');
  // `site` gets every incremental release; `full-N` is an empty deploy root per round, for a
  // release by the same server with nothing to link to.
  const environments = { site: { build: 'dist', target: { type: 'directory', path: '../deploys/site' } } };
  for (let r = 1; r <= rounds; r++)
    environments[`full-${r}`] = {
      build: 'dist',
      target: { type: 'directory', path: `../deploys/full-${r}` },
    };
  await writeFile(configFile, JSON.stringify({ environments }));
  const client = await connect(project, configFile, path.join(workDir, 'state'));
  const rows = [];
  try {
    // The first release of `site` has nothing to link to; it also warms the page cache and the JIT.
    await release(client, 'site');
    const buildBytes = [...(await walk(build.dir)).values()].reduce(
      (n, stat) => n + (stat.isFile() ? stat.size : 0),
      0,
    );

    const loadBefore = loadavg()[0];
    const samples = { incremental: [], copy: [], coreutils: [], full: [], plan: [], hash: [] };
    const bytes = { incremental: [], copy: [], full: [], manifest: [] };
    for (let r = 1; r <= rounds; r++) {
      for (const index of pick(next, changedPerRelease)) await build.set(index, build.versions[index] + 1);
      const steps = {
        incremental: async () => {
          const { plan, applied, planMs, applyMs } = await release(client, 'site');
          const tree = await walk(releaseDir('site', applied.releaseId));
          const got = landed(tree, await walk(releaseDir('site', applied.previousRelease)));
          // The tree and the server's own count must agree, or this measures the wrong thing.
          if (
            plan.files.changed.count !== changedPerRelease ||
            got.files !== applied.files.copied ||
            got.bytes !== applied.files.bytesWritten ||
            got.linked !== applied.files.linked
          )
            throw new Error(
              `release ${applied.releaseId}: on disk ${JSON.stringify(got)}, server ${JSON.stringify(applied.files)}, planned ${plan.files.changed.count} changed`,
            );
          const manifest = (await lstat(manifestFile('site', applied.releaseId))).blocks * 512;
          samples.incremental.push(applyMs);
          samples.plan.push(planMs);
          bytes.incremental.push(got.blocks + manifest);
          bytes.manifest.push(manifest);
          log(
            `round ${r} incremental: plan ${round(planMs, 1)} ms, apply ${round(applyMs, 1)} ms, ${got.files} copied, ${got.linked} linked, ${mib(got.blocks + manifest)} on disk`,
          );
        },
        copy: async () => {
          const destination = path.join(workDir, 'copy');
          const started = performance.now();
          await cp(build.dir, destination, { recursive: true });
          const ms = performance.now() - started;
          const got = landed(await walk(destination), null);
          samples.copy.push(ms);
          bytes.copy.push(got.blocks);
          log(`round ${r} fs.cp: ${round(ms, 1)} ms, ${got.files} files, ${mib(got.blocks)} on disk`);
          await rm(destination, { recursive: true, force: true });
        },
        coreutils: async () => {
          const destination = path.join(workDir, 'copy');
          const started = performance.now();
          execFileSync('cp', ['-R', build.dir, destination]);
          samples.coreutils.push(performance.now() - started);
          await rm(destination, { recursive: true, force: true });
        },
        // What apply_deploy cannot skip: it re-hashes every file of the build against the plan.
        hash: async () => {
          const started = performance.now();
          await forEachLimited([...build.versions.keys()], 8, async (index) =>
            sha256(await readFile(path.join(build.dir, fileOf(index)))),
          );
          samples.hash.push(performance.now() - started);
        },
        full: async () => {
          const environment = `full-${r}`;
          const { applied, applyMs } = await release(client, environment);
          const got = landed(await walk(releaseDir(environment, applied.releaseId)), null);
          const manifest = (await lstat(manifestFile(environment, applied.releaseId))).blocks * 512;
          samples.full.push(applyMs);
          bytes.full.push(got.blocks + manifest);
          log(
            `round ${r} full release: apply ${round(applyMs, 1)} ms, ${applied.files.copied} copied, ${mib(got.blocks + manifest)} on disk`,
          );
          // The server never touches this environment again.
          await rm(path.join(deploys, environment), { recursive: true, force: true });
        },
      };
      const order = ['incremental', 'copy', 'coreutils', 'hash', 'full'];
      if (r % 2 === 0) order.reverse();
      for (const step of order) {
        sync();
        await steps[step]();
      }
    }

    const timeNote = `median of ${rounds} rounds, order reversed every other round, sync before each step; ${fileCount} files + a marker, ${mib(buildBytes)}, ${changedPerRelease} files rewritten per round (seeded); 1-min load average ${loadBefore.toFixed(1)} → ${loadavg()[0].toFixed(1)} on ${availableParallelism()} CPUs`;
    rows.push({
      name: `incremental release time, ${fileCount} files, 1% changed (apply_deploy / fs.cp full copy)`,
      keel: median(samples.incremental),
      reference: median(samples.copy),
      unit: 'ms',
      ratio: median(samples.incremental) / median(samples.copy),
      target: '<= 0.3',
      note: `keel = apply_deploy round trip over stdio (re-hashes the whole build, copies the changed files, hard-links the rest, switches current); reference = fs.cp recursive of the same build into an empty directory, the plain full copy a deploy without links makes (coreutils cp -R of it: ${round(median(samples.coreutils), 1)} ms); plan_deploy before the apply: ${round(median(samples.plan), 1)} ms; reading and sha256-hashing the build alone, in this process: ${round(median(samples.hash), 1)} ms; ${timeNote}`,
    });
    rows.push({
      name: `incremental release bytes written, ${fileCount} files, 1% changed (apply_deploy / fs.cp full copy)`,
      keel: median(bytes.incremental),
      reference: median(bytes.copy),
      unit: 'bytes',
      ratio: median(bytes.incremental) / median(bytes.copy),
      target: '<= 0.3',
      note: `allocated blocks of the inodes each tree added (files not hard-linked to the previous release, plus directories), cross-checked file for file against apply_deploy's files.copied/linked/bytesWritten; keel includes the release's manifest (${mib(median(bytes.manifest))}); median of ${rounds}`,
    });
    rows.push({
      name: `incremental / full release by the same server (nothing to link), time`,
      keel: median(samples.incremental),
      reference: median(samples.full),
      unit: 'ms',
      ratio: median(samples.incremental) / median(samples.full),
      target: 'report',
      note: `reference = apply_deploy into an empty deploy root (same hashing and switch, every file copied): what the hard links alone save; bytes ${mib(median(bytes.incremental))} vs ${mib(median(bytes.full))}; ${timeNote}`,
    });

    rows.push(await pollDuringSwitches({ log, client, build, next, deploys }));
  } finally {
    await client.close();
  }
  for (const row of rows)
    log(
      `${row.name}: keel ${round(row.keel)} ${row.unit}, reference ${round(row.reference)} ${row.unit}, ratio ${round(row.ratio)} (target ${row.target})`,
    );
  return rows;
}

/**
 * 50 releases of two alternating builds (50 files and the release marker differ) while HTTP clients
 * fetch the differing files through a static server that resolves `current` once per request. A
 * request fails when it gets no file (a missing release) or a file that is not the one its marker's
 * build holds (a mixed release).
 */
async function pollDuringSwitches({ log, client, build, next, deploys }) {
  const flip = pick(next, changedPerRelease);
  const versions = { A: flip.map((i) => build.versions[i]), B: flip.map((i) => build.versions[i] + 1000) };
  const expected = { A: new Map(), B: new Map() };
  for (const label of ['A', 'B'])
    flip.forEach((index, k) =>
      expected[label].set(fileOf(index), sha256(contentOf(index, versions[label][k]))),
    );
  const writeBuild = async (label) => {
    await Promise.all(flip.map((index, k) => build.set(index, versions[label][k])));
    await build.marker(label);
  };
  await writeBuild('A');
  await release(client, 'site');

  const child = spawn(process.execPath, [staticServerScript, path.join(deploys, 'site', 'current')], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const port = await new Promise((resolve, reject) => {
    child.once('error', reject);
    child.stdout.once('data', (chunk) => resolve(JSON.parse(String(chunk)).port));
  });
  const paths = [...expected.A.keys()];
  const seen = { requests: 0, missing: 0, mixed: 0, changes: 0, dirs: new Set(), errors: {} };
  let stop = false;
  const poll = async (worker) => {
    let last;
    for (let k = worker; !stop; k += pollers) {
      const file = paths[k % paths.length];
      seen.requests++;
      try {
        const response = await fetch(`http://127.0.0.1:${port}/${file}`);
        const body = Buffer.from(await response.arrayBuffer());
        if (response.status !== 200) {
          seen.missing++;
          const code = response.headers.get('x-error') ?? String(response.status);
          seen.errors[code] = (seen.errors[code] ?? 0) + 1;
          continue;
        }
        const label = response.headers.get('x-release');
        if (expected[label]?.get(file) !== sha256(body)) {
          seen.mixed++;
          continue;
        }
        if (last !== undefined && last !== label) seen.changes++;
        last = label;
        seen.dirs.add(response.headers.get('x-release-dir'));
      } catch (error) {
        seen.missing++;
        const code = error?.cause?.code ?? error?.name ?? 'error';
        seen.errors[code] = (seen.errors[code] ?? 0) + 1;
      }
    }
  };
  const started = performance.now();
  const polling = Array.from({ length: pollers }, (_, worker) => poll(worker));
  try {
    while (seen.requests < 2 * pollers) await new Promise((resolve) => setTimeout(resolve, 5));
    log(`${switches} switches with ${pollers} HTTP clients reading through current`);
    for (let s = 1; s <= switches; s++) {
      await writeBuild(s % 2 === 1 ? 'B' : 'A');
      await release(client, 'site');
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  } finally {
    stop = true;
    await Promise.all(polling);
    child.stdin.end();
  }
  const seconds = (performance.now() - started) / 1000;
  const failed = seen.missing + seen.mixed;
  return {
    name: `requests failed by a poller reading through current during ${switches} switches`,
    keel: failed,
    reference: seen.requests,
    unit: 'requests',
    ratio: failed / seen.requests,
    target: '0 failed',
    note: `reference = requests made; failed = ${seen.missing} missing${Object.keys(seen.errors).length > 0 ? ` ${JSON.stringify(seen.errors)}` : ''} + ${seen.mixed} mixed (a file other than its marker's build holds); each switch is plan_deploy + apply_deploy of the other build (${changedPerRelease} files and the marker differ; keep 5 prunes as it goes); ${pollers} HTTP clients on a static server resolving current once per request saw ${seen.dirs.size} releases and ${seen.changes} changes of release; ${seconds.toFixed(1)} s`,
  };
}
