// Keel filesystem server against the reference filesystem server (@modelcontextprotocol/server-filesystem),
// side by side in one run, each through its bin over stdio with the same client.
import { spawn } from 'node:child_process';
import { mkdir, writeFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';

const here = path.dirname(fileURLToPath(import.meta.url));
// The workspace package when linked; else its place in the repository (the same built bin).
const keelBin = (() => {
  try {
    return fileURLToPath(
      new URL('./dist/bin.js', import.meta.resolve('@keel/server-filesystem/package.json')),
    );
  } catch {
    return path.join(here, '..', '..', '..', '..', 'servers', 'filesystem', 'dist', 'bin.js');
  }
})();
const referenceBin = path.join(
  here,
  '..',
  '..',
  'node_modules',
  '@modelcontextprotocol',
  'server-filesystem',
  'dist',
  'index.js',
);

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const round = (n, digits = 2) => Number(n.toFixed(digits));

async function exists(p) {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** Writes many small files with bounded concurrency. */
async function writeMany(entries) {
  for (let i = 0; i < entries.length; i += 512) {
    await Promise.all(entries.slice(i, i + 512).map(([file, content]) => writeFile(file, content)));
  }
}

async function generate(workDir, log) {
  const dir10k = path.join(workDir, 'dir10k');
  const tree100k = path.join(workDir, 'tree100k');
  const bigFile = path.join(workDir, 'big', 'ten-mb.txt');
  if (!(await exists(path.join(dir10k, '.done')))) {
    log('generating a 10k-entry directory');
    await mkdir(dir10k, { recursive: true });
    await writeMany(
      Array.from({ length: 10_000 }, (_, i) => [
        path.join(dir10k, `entry-${String(i).padStart(5, '0')}.txt`),
        `entry ${i}\n`,
      ]),
    );
    await writeFile(path.join(dir10k, '.done'), '');
  }
  if (!(await exists(path.join(tree100k, '.done')))) {
    log('generating a 100k-file tree (100 x 10 directories x 100 files)');
    for (let a = 0; a < 100; a++) {
      const files = [];
      for (let b = 0; b < 10; b++) {
        const dir = path.join(tree100k, `pkg-${String(a).padStart(3, '0')}`, `mod-${b}`);
        await mkdir(dir, { recursive: true });
        for (let c = 0; c < 100; c++) {
          const n = a * 1000 + b * 100 + c;
          const needle = n % 1000 === 7 ? 'const NEEDLE_VALUE = 42;\n' : '';
          files.push([
            path.join(dir, `file-${String(n).padStart(6, '0')}.ts`),
            `// file ${n}\nexport const value${n} = ${n};\n${needle}export function f${n}() {\n  return value${n} * 2;\n}\n`,
          ]);
        }
      }
      await writeMany(files);
    }
    await writeFile(path.join(tree100k, '.done'), '');
  }
  if (!(await exists(bigFile))) {
    log('generating a 10 MB file');
    await mkdir(path.dirname(bigFile), { recursive: true });
    const line = (i) => `${String(i).padStart(8, '0')} ${'lorem ipsum dolor sit amet '.repeat(3)}\n`;
    const lines = [];
    let size = 0;
    for (let i = 0; size < 10 * 1024 * 1024; i++) {
      const l = line(i);
      lines.push(l);
      size += l.length;
    }
    await writeFile(bigFile, lines.join(''));
  }
  return { dir10k, tree100k, bigFile };
}

function commandFor(kind, root, stateDir) {
  return kind === 'keel'
    ? {
        command: process.execPath,
        args: [
          keelBin,
          '--root',
          root,
          '--state-dir',
          stateDir,
          '--log-level',
          'error',
          '--timeout-ms',
          '600000',
        ],
      }
    : { command: process.execPath, args: [referenceBin, root] };
}

async function connect(kind, root, stateDir) {
  const { command, args } = commandFor(kind, root, stateDir);
  const transport = new StdioClientTransport({ command, args, stderr: 'ignore' });
  const client = new Client({ name: 'keel-bench', version: '0.0.0' });
  const started = performance.now();
  await client.connect(transport);
  return { client, initMs: performance.now() - started };
}

async function timed(client, name, args, timeout = 600_000) {
  const started = performance.now();
  const result = await client.callTool({ name, arguments: args }, { timeout });
  const ms = performance.now() - started;
  if (result.isError) throw new Error(`${name} failed: ${result.content?.[0]?.text}`);
  return { ms, result, bytes: Buffer.byteLength(JSON.stringify(result)) };
}

/**
 * Medians of two measurements taken in alternation, so a load spike on a shared machine falls on
 * both sides instead of on whichever ran during it.
 */
async function paired(iterations, keelFn, referenceFn) {
  const samples = { keel: [], reference: [] };
  let keelLast;
  let referenceLast;
  for (let i = 0; i < iterations; i++) {
    keelLast = await keelFn();
    samples.keel.push(keelLast.ms);
    referenceLast = await referenceFn();
    samples.reference.push(referenceLast.ms);
  }
  return [
    { ms: median(samples.keel), last: keelLast },
    { ms: median(samples.reference), last: referenceLast },
  ];
}

/**
 * One tool call over a bare JSON-RPC stdio exchange, for an answer too large for the SDK client to
 * accept (it closes the connection). Returns the bytes of the `result` object, as `timed` measures.
 */
function rawCall(kind, root, stateDir, name, args) {
  const { command, args: argv } = commandFor(kind, root, stateDir);
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(command, argv, { stdio: ['pipe', 'pipe', 'ignore'] });
    let buffer = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      buffer += chunk;
      let newline;
      while ((newline = buffer.indexOf('\n')) !== -1) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        const message = JSON.parse(line);
        if (message.id === 2) {
          const ms = performance.now() - started;
          child.stdin.end();
          child.kill();
          resolve({ ms, bytes: Buffer.byteLength(JSON.stringify(message.result)) });
        }
      }
    });
    child.on('error', reject);
    const send = (message) => child.stdin.write(`${JSON.stringify(message)}\n`);
    send({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: '2025-06-18',
        capabilities: {},
        clientInfo: { name: 'keel-bench', version: '0.0.0' },
      },
    });
    send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    send({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name, arguments: args } });
  });
}

function grepTime(pattern, dir) {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn('grep', ['-rn', pattern, dir], { stdio: ['ignore', 'pipe', 'ignore'] });
    let lines = 0;
    child.stdout.on('data', (chunk) => {
      for (const byte of chunk) if (byte === 0x0a) lines++;
    });
    child.on('error', reject);
    child.on('close', () => resolve({ ms: performance.now() - started, lines }));
  });
}

export async function run({ log, workDir }) {
  const { dir10k, tree100k, bigFile } = await generate(workDir, log);
  const stateDir = path.join(workDir, 'keel-state');
  const rows = [];
  const row = (name, keel, reference, unit, target, note) => {
    const entry = {
      name,
      keel: round(keel),
      reference: round(reference),
      unit,
      ratio: round(keel / reference, 3),
      target,
    };
    if (note !== undefined) entry.note = note;
    rows.push(entry);
    log(
      `${name}: keel ${entry.keel} ${unit}, reference ${entry.reference} ${unit}, ratio ${entry.ratio} (target ${target})`,
    );
  };

  // Cold start: spawn to initialize answered.
  const cold = { keel: [], reference: [] };
  for (let i = 0; i < 5; i++) {
    for (const kind of ['keel', 'reference']) {
      const { client, initMs } = await connect(kind, workDir, stateDir);
      cold[kind].push(initMs);
      await client.close();
    }
  }
  // The kit's own fixture server, as the floor any kit-built server starts from.
  let kitNote = '';
  try {
    const fixtureBin = fileURLToPath(new URL('./fixture/bin.js', import.meta.resolve('@keel/testing')));
    const fixture = [];
    for (let i = 0; i < 5; i++) {
      const transport = new StdioClientTransport({
        command: process.execPath,
        args: [fixtureBin, '--root', workDir, '--state-dir', stateDir, '--log-level', 'error'],
        stderr: 'ignore',
      });
      const client = new Client({ name: 'keel-bench', version: '0.0.0' });
      const started = performance.now();
      await client.connect(transport);
      fixture.push(performance.now() - started);
      await client.close();
    }
    kitNote = `; the kit's fixture server (8 small tools) starts in ${round(median(fixture))} ms`;
  } catch {
    // No fixture bin built: report without the floor.
  }
  row(
    'cold start to initialize',
    median(cold.keel),
    median(cold.reference),
    'ms',
    '<= 1.0',
    `median of 5 spawns${kitNote}`,
  );

  const keel = (await connect('keel', workDir, stateDir)).client;
  const reference = (await connect('reference', workDir, stateDir)).client;
  try {
    // Name search on the 100k tree.
    log('name search on the 100k-file tree');
    const [keelFind, refFind] = await paired(
      3,
      () => timed(keel, 'find_files', { path: tree100k, pattern: '**/*77.ts', limit: 10_000 }),
      () => timed(reference, 'search_files', { path: tree100k, pattern: '**/*77.ts' }),
    );
    const keelCount = keelFind.last.result.structuredContent.matches.length;
    const refCount = refFind.last.result.structuredContent.content.split('\n').length;
    row(
      'name search (find_files / search_files), 100k files',
      keelFind.ms,
      refFind.ms,
      'ms',
      '<= 0.5',
      `median of 3; ${keelCount} vs ${refCount} matches`,
    );

    // Tree: bytes returned by default.
    log('tree on the 100k-file tree');
    const keelTree = await timed(keel, 'tree', { path: tree100k });
    // The reference answers with ~20 MB of JSON, which the SDK client refuses (it closes the connection,
    // which ends that server). Measure it over a bare JSON-RPC exchange instead and say so.
    let refTree;
    let refTreeVia = 'the same client';
    try {
      const separate = (await connect('reference', workDir, stateDir)).client;
      try {
        refTree = await timed(separate, 'directory_tree', { path: tree100k });
      } finally {
        await separate.close().catch(() => undefined);
      }
    } catch {
      refTree = await rawCall('reference', workDir, stateDir, 'directory_tree', { path: tree100k });
      refTreeVia = 'a bare JSON-RPC exchange (the SDK client closed the connection on its answer)';
    }
    // The cursor walk (no depth cut) must still cover every entry: 100 + 1000 directories and 100k files.
    let covered = 0;
    let pages = 0;
    let cursor;
    const walkStarted = performance.now();
    do {
      const page = await timed(keel, 'tree', {
        path: tree100k,
        maxDepth: 10,
        maxEntries: 5000,
        ...(cursor === undefined ? {} : { cursor }),
      });
      covered += page.result.structuredContent.entries.length;
      cursor = page.result.structuredContent.truncated?.nextCursor;
      pages++;
    } while (cursor !== undefined);
    const walkMs = performance.now() - walkStarted;
    row(
      'tree bytes by default (tree / directory_tree), 100k files',
      keelTree.bytes,
      refTree.bytes,
      'bytes',
      '<= 0.1',
      `reference measured through ${refTreeVia}; keel ${round(keelTree.ms)} ms vs reference ${round(refTree.ms)} ms; cursor walk covered ${covered} of 101100 entries in ${pages} pages (${round(walkMs / 1000, 1)} s)`,
    );

    // Window read of a 10 MB file: the first 100 lines.
    log('window read of a 10 MB file');
    const [keelRead, refRead] = await paired(
      31,
      () => timed(keel, 'read_file', { path: bigFile, startLine: 1, endLine: 100 }),
      () => timed(reference, 'read_text_file', { path: bigFile, head: 100 }),
    );
    row(
      'window read, first 100 lines of a 10 MB file',
      keelRead.ms,
      refRead.ms,
      'ms',
      '<= 1.0',
      'median of 31, alternating',
    );
    const [keelTail, refTail] = await paired(
      31,
      () => timed(keel, 'read_file', { path: bigFile, tailLines: 100 }),
      () => timed(reference, 'read_text_file', { path: bigFile, tail: 100 }),
    );
    row(
      'window read, last 100 lines of a 10 MB file',
      keelTail.ms,
      refTail.ms,
      'ms',
      'report',
      'median of 31, alternating',
    );

    // A 10k-entry directory.
    log('listing a 10k-entry directory');
    const [keelList, refList] = await paired(
      5,
      () => timed(keel, 'list_directory', { path: dir10k }),
      () => timed(reference, 'list_directory_with_sizes', { path: dir10k }),
    );
    row(
      'list a 10k-entry directory (first page / whole listing with sizes)',
      keelList.ms,
      refList.ms,
      'ms',
      'report',
      `bytes: keel ${keelList.last.bytes}, reference ${refList.last.bytes}`,
    );

    // Content search: Keel search_text against grep -rn (the reference has no content search).
    log('content search on the 100k-file tree');
    const [keelSearch, grepSearch] = await paired(
      3,
      () =>
        timed(keel, 'search_text', {
          path: tree100k,
          pattern: 'NEEDLE_VALUE',
          literal: true,
          maxMatches: 2000,
          timeBudgetMs: 60_000,
        }),
      () => grepTime('NEEDLE_VALUE', tree100k),
    );
    row(
      'content search (search_text / grep -rn), 100k files',
      keelSearch.ms,
      grepSearch.ms,
      'ms',
      'report',
      `${keelSearch.last.result.structuredContent.matches.length} vs ${grepSearch.last.lines} matching lines`,
    );
  } finally {
    await keel.close();
    await reference.close();
  }
  return rows;
}
