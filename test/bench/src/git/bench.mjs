// Keel git server against raw git and @cyanheads/git-mcp-server on the same repository, side by
// side in one run, each server through its bin over stdio with the same client.
import { execFile } from 'node:child_process';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';

const here = path.dirname(fileURLToPath(import.meta.url));
const keelBin = (() => {
  try {
    return fileURLToPath(new URL('./dist/bin.js', import.meta.resolve('@keel/server-git/package.json')));
  } catch {
    return path.join(here, '..', '..', '..', '..', 'servers', 'git', 'dist', 'bin.js');
  }
})();
const referenceBin = path.join(
  here,
  '..',
  '..',
  'node_modules',
  '@cyanheads',
  'git-mcp-server',
  'dist',
  'index.js',
);

const floorBin = path.join(here, 'floorServer.mjs');

/** The command raw git runs for each tool: what Keel's tool runs, without Keel's hardening flags. */
const rawCommands = {
  git_status: ['status', '--porcelain=v2', '--branch', '-z', '--untracked-files=all'],
  git_log: [
    'log',
    '--format=%H%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%s%x00%b%x00',
    '--max-count=31',
    'HEAD',
  ],
  git_diff: ['diff', '--no-color', '-M'],
};

const FILES = 5000;
const COMMITS = 2000;
const DIFF_FILES = 200;
const ITERATIONS = 31;
const WARMUP = 3;

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const round = (n, digits = 2) => Number(n.toFixed(digits));

const gitEnv = (home) => ({
  PATH: process.env.PATH,
  HOME: home,
  GIT_CONFIG_NOSYSTEM: '1',
  GIT_CONFIG_GLOBAL: '/dev/null',
  GIT_TERMINAL_PROMPT: '0',
  GIT_AUTHOR_NAME: 'Bench',
  GIT_AUTHOR_EMAIL: 'bench@keel.invalid',
  GIT_COMMITTER_NAME: 'Bench',
  GIT_COMMITTER_EMAIL: 'bench@keel.invalid',
});
const git = (cwd, args, input) =>
  new Promise((resolve, reject) => {
    const child = execFile(
      'git',
      args,
      { cwd, env: gitEnv(cwd), maxBuffer: 256 * 1024 * 1024 },
      (error, stdout) => (error ? reject(error) : resolve(stdout)),
    );
    if (input !== undefined) child.stdin.end(input);
  });

const fileName = (i) => `src/pkg-${String(i % 50).padStart(2, '0')}/file-${String(i).padStart(5, '0')}.txt`;
const fileContent = (i, version) =>
  `file ${i} version ${version}\n${'some line of text for the file body\n'.repeat(4)}`;

/** A repository with FILES files and COMMITS commits, built with fast-import, plus a ~2 MB working-tree diff. */
async function generate(workDir, log) {
  const repo = path.join(workDir, 'repo');
  if (
    await stat(path.join(repo, '.bench-done')).then(
      () => true,
      () => false,
    )
  )
    return repo;
  log(`generating a repository with ${FILES} files and ${COMMITS} commits`);
  await mkdir(repo, { recursive: true });
  await git(repo, ['init', '-q', '-b', 'main']);
  for (const [key, value] of [
    ['gc.auto', '0'],
    ['user.name', 'Bench'],
    ['user.email', 'bench@keel.invalid'],
    ['core.hooksPath', '/dev/null'],
  ])
    await git(repo, ['config', key, value]);
  const chunks = [];
  const data = (text) => `data ${Buffer.byteLength(text)}\n${text}\n`;
  let time = 1_700_000_000;
  for (let c = 0; c < COMMITS; c++) {
    chunks.push(
      `commit refs/heads/main\ncommitter Bench <bench@keel.invalid> ${time++} +0000\n${data(`commit ${c}\n\nBody of commit ${c}.\n`)}`,
    );
    if (c === 0) {
      for (let i = 0; i < FILES; i++)
        chunks.push(`M 100644 inline ${fileName(i)}\n${data(fileContent(i, 0))}`);
    } else {
      for (let k = 0; k < 3; k++) {
        const i = (c * 7 + k * 1693) % FILES;
        chunks.push(`M 100644 inline ${fileName(i)}\n${data(fileContent(i, c))}`);
      }
    }
  }
  chunks.push('done\n');
  await git(repo, ['fast-import', '--quiet', '--done'], chunks.join(''));
  await git(repo, ['reset', '-q', '--hard', 'main']);
  log(`rewriting ${DIFF_FILES} files for a ~2 MB diff`);
  for (let d = 0; d < DIFF_FILES; d++) {
    const i = d * Math.floor(FILES / DIFF_FILES);
    const lines = Array.from(
      { length: 170 },
      (_, n) => `rewritten ${i} line ${n} ${'lorem ipsum '.repeat(3)}\n`,
    ).join('');
    await writeFile(path.join(repo, fileName(i)), lines);
  }
  await writeFile(path.join(repo, '.git', 'info', 'exclude'), '.bench-done\n');
  await writeFile(path.join(repo, '.bench-done'), '');
  return repo;
}

async function connect(command, args, env) {
  const transport = new StdioClientTransport({
    command,
    args,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stderr: 'ignore',
  });
  const client = new Client({ name: 'keel-bench', version: '0.0.0' });
  await client.connect(transport);
  return client;
}

/**
 * Medians of several functions measured interleaved (a rotating order each round), so a burst of load
 * on a shared machine hits every contender alike instead of whichever block ran during it.
 */
async function timeInterleaved(fns) {
  for (let i = 0; i < WARMUP; i++) for (const fn of fns) await fn();
  const samples = fns.map(() => []);
  for (let i = 0; i < ITERATIONS; i++) {
    for (let k = 0; k < fns.length; k++) {
      const index = (i + k) % fns.length;
      const started = performance.now();
      await fns[index]();
      samples[index].push(performance.now() - started);
    }
  }
  return samples.map(median);
}

/**
 * The git command line and environment Keel's server runs for one tool call, captured by a `git` on
 * the server's PATH that notes them and runs the real one: so the bench can time git as Keel runs it
 * (hardening flags, environment) beside git as the floor runs it, without a copy of Keel's flags.
 */
async function keelGitCommand(workDir, tool, args, matches) {
  const spyDir = path.join(workDir, 'git-spy');
  const notes = path.join(spyDir, 'calls.jsonl');
  const realGit = await new Promise((resolve, reject) =>
    execFile('sh', ['-c', 'command -v git'], (error, stdout) =>
      error ? reject(error) : resolve(stdout.trim()),
    ),
  );
  await mkdir(spyDir, { recursive: true });
  await writeFile(notes, '');
  await writeFile(
    path.join(spyDir, 'git'),
    `#!${process.execPath}
const { appendFileSync } = require('node:fs');
const { spawnSync } = require('node:child_process');
appendFileSync(${JSON.stringify(notes)}, JSON.stringify({ args: process.argv.slice(2), env: process.env, cwd: process.cwd() }) + '\\n');
const ran = spawnSync(${JSON.stringify(realGit)}, process.argv.slice(2), { stdio: 'inherit' });
process.exit(ran.status ?? 1);
`,
    { mode: 0o755 },
  );
  const spied = await connect(
    process.execPath,
    [keelBin, '--root', workDir, '--state-dir', path.join(workDir, 'keel-state-spy'), '--log-level', 'error'],
    { PATH: `${spyDir}:${process.env.PATH}` },
  );
  try {
    await callOk(spied, tool, args);
  } finally {
    await spied.close().catch(() => undefined);
  }
  const calls = (await readFile(notes, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line))
    .filter((call) => matches(call.args));
  if (calls.length !== 1) throw new Error(`expected one matching git call from ${tool}, saw ${calls.length}`);
  const [call] = calls;
  return { file: realGit, args: call.args, cwd: call.cwd, env: { ...call.env, PATH: process.env.PATH } };
}

async function callOk(client, name, args) {
  const result = await client.callTool({ name, arguments: args });
  if (result.isError) throw new Error(`${name}: ${result.content?.[0]?.text}`);
  return result;
}

export async function run({ log, workDir }) {
  const repo = await generate(workDir, log);
  const rawDiff = await git(repo, ['-c', 'core.quotePath=false', 'diff', '--no-color', '-M']);
  log(`working-tree diff is ${(Buffer.byteLength(rawDiff) / 1024 / 1024).toFixed(2)} MB`);

  const keel = await connect(
    process.execPath,
    [keelBin, '--root', workDir, '--state-dir', path.join(workDir, 'keel-state'), '--log-level', 'error'],
    {},
  );
  const reference = await connect(process.execPath, [referenceBin], {
    MCP_TRANSPORT_TYPE: 'stdio',
    MCP_LOG_LEVEL: 'error',
    GIT_BASE_DIR: workDir,
    GIT_SIGN_COMMITS: 'false',
    MCP_HTTP_HOST: '127.0.0.1',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
  });
  const floor = await connect(process.execPath, [floorBin], {
    KEEL_BENCH_GIT_COMMANDS: JSON.stringify(rawCommands),
  });
  const rows = [];
  try {
    const cases = [
      {
        name: 'git_status (5k files, 200 modified)',
        tool: 'git_status',
        keel: () => callOk(keel, 'git_status', { repo }),
        reference: () => callOk(reference, 'git_status', { path: repo }),
      },
      {
        name: 'git_log first page (30 of 2k commits)',
        tool: 'git_log',
        keel: () => callOk(keel, 'git_log', { repo, limit: 30 }),
        reference: () => callOk(reference, 'git_log', { path: repo, maxCount: 30 }),
      },
      {
        name: 'git_diff working tree (2 MB)',
        tool: 'git_diff',
        keel: () => callOk(keel, 'git_diff', { repo }),
        reference: () => callOk(reference, 'git_diff', { path: repo }),
      },
    ];
    log("timing git_log's git command as Keel runs it against the floor's");
    const keelLog = await keelGitCommand(workDir, 'git_log', { repo, limit: 30 }, (args) =>
      args.includes('log'),
    );
    const runAs = (command) =>
      new Promise((resolve, reject) =>
        execFile(command.file, command.args, { cwd: command.cwd, env: command.env }, (error, stdout) =>
          error ? reject(error) : resolve(stdout),
        ),
      );
    const [gitAsKeelMs, gitAsFloorMs] = await timeInterleaved([
      () => runAs(keelLog),
      () => git(repo, rawCommands.git_log),
    ]);
    const gitShare = gitAsKeelMs - gitAsFloorMs;

    for (const c of cases) {
      log(`timing ${c.name}`);
      const [rawMs, keelMs, referenceMs, floorMs] = await timeInterleaved([
        () => git(repo, rawCommands[c.tool]),
        c.keel,
        c.reference,
        () => callOk(floor, c.tool, { repo }),
      ]);
      // Against the floor, not raw git: most of raw git's time is starting a process, which no server avoids.
      rows.push({
        name: `${c.name}: keel / floor`,
        keel: round(keelMs),
        reference: round(floorMs),
        unit: 'ms',
        ratio: round(keelMs / floorMs, 3),
        target: '<= 1.15',
        note: `floor: a bare SDK server running the same git command, output as plain text; raw git ${round(rawMs)} ms (keel / raw ${round(keelMs / rawMs, 3)}); keel − floor ${round(keelMs - floorMs)} ms per call`,
      });
      if (c.tool === 'git_log')
        rows.push({
          name: `${c.name}: git as keel runs it / as the floor runs it`,
          keel: round(gitAsKeelMs),
          reference: round(gitAsFloorMs),
          unit: 'ms',
          ratio: round(gitAsKeelMs / gitAsFloorMs, 3),
          target: 'diagnostic',
          note: `the same git process with Keel's hardening flags and environment (captured from its server), without a server: ${round(gitShare)} ms of the ${round(keelMs - floorMs)} ms keel − floor is git's; the rest is the server's work per call`,
        });
      rows.push({
        name: `${c.name}: keel / cyanheads`,
        keel: round(keelMs),
        reference: round(referenceMs),
        unit: 'ms',
        ratio: round(keelMs / referenceMs, 3),
        target: '<= 1.0',
      });
    }

    log('measuring git_diff output size and cursor coverage');
    const first = await callOk(keel, 'git_diff', { repo });
    const firstBytes = Buffer.byteLength(JSON.stringify(first));
    const referenceBytes = Buffer.byteLength(
      JSON.stringify(await callOk(reference, 'git_diff', { path: repo })),
    );
    rows.push({
      name: 'git_diff default output on the 2 MB diff',
      keel: round(firstBytes / 1024),
      reference: round(referenceBytes / 1024),
      unit: 'KB',
      ratio: round(firstBytes / referenceBytes, 4),
      target: 'keel <= 64 KB',
      note: `keel's first page is ${firstBytes} bytes of JSON-RPC result; cyanheads returns the whole diff in one result`,
    });
    let page = first.structuredContent;
    let patch = page.patch;
    let pages = 1;
    while (page.truncated?.nextCursor !== undefined) {
      page = (await callOk(keel, 'git_diff', { repo, cursor: page.truncated.nextCursor })).structuredContent;
      patch += page.patch;
      pages++;
    }
    const complete = patch === rawDiff;
    rows.push({
      name: 'git_diff cursor coverage of the 2 MB diff',
      keel: round(Buffer.byteLength(patch) / Buffer.byteLength(rawDiff), 4),
      reference: 1,
      unit: 'fraction of raw git diff bytes',
      ratio: round(Buffer.byteLength(patch) / Buffer.byteLength(rawDiff), 4),
      target: '= 1 (byte-identical)',
      note: `${pages} pages; concatenation ${complete ? 'is byte-identical to' : 'DIFFERS from'} git diff`,
    });
  } finally {
    await keel.close().catch(() => undefined);
    await reference.close().catch(() => undefined);
    await floor.close().catch(() => undefined);
  }
  return rows;
}
