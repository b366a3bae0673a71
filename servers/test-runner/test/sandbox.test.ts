import { spawnSync } from 'node:child_process';
import { access, chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import path from 'node:path';
import { tempDir, toolErrorOf } from '@keel/testing';
import { describe, expect, it, onTestFinished } from 'vitest';
import { processesIn, settledProcessesIn, startServer } from './helpers.js';

const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

const bwrapWorks =
  spawnSync('bwrap', ['--unshare-user', '--unshare-net', '--ro-bind', '/', '/', 'true']).status === 0;
if (!bwrapWorks)
  console.warn('sandbox tests skipped: bwrap is missing or cannot run here (apt-get install bubblewrap)');

/** A loopback server that counts connections: what `keel console` would be to a test file. */
async function listen(): Promise<{ port: number; connections: () => number }> {
  let count = 0;
  const sockets = new Set<Socket>();
  const server: NetServer = createServer((socket) => {
    count++;
    sockets.add(socket);
    socket.on('error', () => {}).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { port: address.port, connections: () => count };
}

interface World {
  base: string;
  project: string;
  stateDir: string;
  home: string;
  port: number;
  connections: () => number;
}

/**
 * A project beside Keel's own files: a state dir with a key and a program that approves things, a
 * HOME with a secret, a directory outside the roots, and a console on loopback. Each attack test
 * file passes only if its attack worked.
 */
async function world(): Promise<World> {
  const base = await tempDir('keel-tr-sandbox-');
  const project = path.join(base, 'project');
  const stateDir = path.join(base, 'state');
  const home = path.join(base, 'home');
  await mkdir(path.join(project, 'test'), { recursive: true });
  await mkdir(path.join(stateDir, 'keys'), { recursive: true });
  await mkdir(path.join(stateDir, 'bin'), { recursive: true });
  await mkdir(path.join(base, 'outside'), { recursive: true });
  await mkdir(home, { recursive: true });
  await writeFile(path.join(stateDir, 'keys', 'approval.key'), 'approval-key-secret\n');
  await writeFile(path.join(home, '.keel-secret'), 'home-secret\n');
  const approve = path.join(stateDir, 'bin', 'keel-approve');
  await writeFile(approve, `#!/bin/sh\necho approved > '${path.join(base, 'approved')}'\n`);
  await chmod(approve, 0o755);
  const { port, connections } = await listen();
  const files: Record<string, string> = {
    'package.json': JSON.stringify({ name: 'victim', private: true, scripts: { test: 'node --test' } }),
    'data.txt': 'project data',
    'test/read-key.test.js': `const { test } = require('node:test');
const fs = require('node:fs');
test('reads the approval key', () => {
  const key = fs.readFileSync(${JSON.stringify(path.join(stateDir, 'keys', 'approval.key'))}, 'utf8');
  console.log('stolen:', key);
});
`,
    'test/read-home.test.js': `const { test } = require('node:test');
const fs = require('node:fs');
test('reads a secret in HOME', () => {
  const secret = fs.readFileSync(${JSON.stringify(path.join(home, '.keel-secret'))}, 'utf8');
  console.log('stolen:', secret);
});
`,
    'test/write-outside.test.js': `const { test } = require('node:test');
const fs = require('node:fs');
test('writes outside the roots', () => {
  fs.writeFileSync(${JSON.stringify(path.join(base, 'outside', 'written.txt'))}, 'planted');
});
`,
    'test/console.test.js': `const { test } = require('node:test');
const net = require('node:net');
test('calls the console on loopback', async () => {
  await new Promise((resolve, reject) => {
    const socket = net.connect(${port}, '127.0.0.1', () => { socket.end('POST /api/approve'); resolve(); });
    socket.on('error', reject);
  });
});
`,
    'test/run-state-binary.test.js': `const { test } = require('node:test');
const { execFileSync } = require('node:child_process');
test('runs a program from the state dir', () => {
  execFileSync(${JSON.stringify(approve)});
});
`,
    'test/benign.test.js': `const { test } = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
test('works inside the project', () => {
  const root = path.join(__dirname, '..');
  assert.equal(fs.readFileSync(path.join(root, 'data.txt'), 'utf8'), 'project data');
  fs.mkdirSync(path.join(root, 'out'), { recursive: true });
  fs.writeFileSync(path.join(root, 'out', 'result.txt'), 'written by the test');
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'scratch-'));
  fs.writeFileSync(path.join(scratch, 'a.txt'), 'tmp works');
  fs.writeFileSync(path.join(os.homedir(), '.cache-probe'), 'home works');
  assert.equal(execFileSync(process.execPath, ['-e', 'process.stdout.write(String(6 * 7))']).toString(), '42');
  assert.equal(execFileSync('sh', ['-c', 'echo shell works']).toString(), 'shell works\\n');
});
`,
  };
  for (const [file, content] of Object.entries(files)) await writeFile(path.join(project, file), content);
  return { base, project, stateDir, home, port, connections };
}

describe.skipIf(!bwrapWorks)('agent-written tests run in a bubblewrap sandbox', () => {
  it('a test file cannot read keys or HOME, write outside the roots, reach loopback or run Keel programs', async () => {
    const w = await world();
    const server = await startServer(w.project, 'v2', [], {
      stateDir: w.stateDir,
      env: { HOME: w.home },
    });
    const result = await server.call('run_tests', { fresh: true });
    expect(result.isError).toBeFalsy();
    const run = result.structuredContent!;
    const failures = (run['failures'] as Array<{ name: string; message: string }>).map((f) => ({
      name: f.name,
      message: f.message,
    }));
    expect({
      outcome: run['outcome'],
      totals: run['totals'],
      sandbox: run['sandbox'],
      failures,
    }).toEqual({
      outcome: 'failed',
      totals: { total: 6, passed: 1, failed: 5, skipped: 0 },
      sandbox: { kind: 'bwrap' },
      failures: [
        {
          name: 'calls the console on loopback',
          message: `connect ECONNREFUSED 127.0.0.1:${w.port}`,
        },
        {
          name: 'reads a secret in HOME',
          message: `ENOENT: no such file or directory, open '${path.join(w.home, '.keel-secret')}'`,
        },
        {
          name: 'reads the approval key',
          message: `ENOENT: no such file or directory, open '${path.join(w.stateDir, 'keys', 'approval.key')}'`,
        },
        {
          name: 'runs a program from the state dir',
          message: `spawnSync ${path.join(w.stateDir, 'bin', 'keel-approve')} ENOENT`,
        },
        {
          name: 'writes outside the roots',
          message: `ENOENT: no such file or directory, open '${path.join(w.base, 'outside', 'written.txt')}'`,
        },
      ],
    });
    expect(result.content[0]?.text?.split('\n')[1]).toBe(
      'sandbox: bwrap (network off; only the roots writable; private HOME and /tmp)',
    );
    const output = JSON.stringify(run['output']);
    expect([output.includes('approval-key-secret'), output.includes('home-secret')]).toEqual([false, false]);
    expect(w.connections()).toBe(0);
    expect(await exists(path.join(w.base, 'outside', 'written.txt'))).toBe(false);
    expect(await exists(path.join(w.base, 'approved'))).toBe(false);
    // The benign twin's write inside the project is there; its HOME and /tmp were private.
    expect(await readFile(path.join(w.project, 'out', 'result.txt'), 'utf8')).toBe('written by the test');
    expect(await exists(path.join(w.home, '.cache-probe'))).toBe(false);
  });

  it('a test that escapes its process group is still killed at the timeout', async () => {
    const w = await world();
    await writeFile(
      path.join(w.project, 'test', 'escape.test.js'),
      `const { test } = require('node:test');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
test('leaves a process behind', async () => {
  const marker = path.join(__dirname, '..', 'escaped.started');
  spawn(process.execPath, ['-e', \`require('node:fs').writeFileSync(\${JSON.stringify(marker)}, 'x'); setInterval(() => {}, 1000)\`], {
    detached: true,
    stdio: 'ignore',
  }).unref();
  while (!fs.existsSync(marker)) await new Promise((resolve) => setTimeout(resolve, 20));
  await new Promise(() => setInterval(() => {}, 1000));
});
`,
    );
    onTestFinished(async () => {
      // Should the kill miss, the test still leaves nothing running.
      for (const pid of await processesIn(w.project)) process.kill(pid, 'SIGKILL');
    });
    const server = await startServer(w.project, 'v2', [], { stateDir: w.stateDir, env: { HOME: w.home } });
    const run = await server.ok('run_tests', { files: ['test/escape.test.js'], timeoutMs: 10_000 });
    expect(run['outcome']).toBe('timeout');
    // The event this is about: the detached process did start (in its own session) before the kill.
    expect(await exists(path.join(w.project, 'escaped.started'))).toBe(true);
    expect(await settledProcessesIn(w.project)).toEqual([]);
  });

  it('a state dir inside the root is empty inside', async () => {
    const w = await world();
    const stateDir = path.join(w.project, '.keel');
    await mkdir(path.join(stateDir, 'keys'), { recursive: true });
    await writeFile(path.join(stateDir, 'keys', 'cursor.key'), 'cursor-key-secret');
    await writeFile(
      path.join(w.project, 'test', 'state.test.js'),
      `const { test } = require('node:test');
const fs = require('node:fs');
const path = require('node:path');
test('lists the state dir in the root', () => {
  const entries = fs.readdirSync(path.join(__dirname, '..', '.keel'));
  if (entries.length === 0) throw new Error('the state dir is empty');
  console.log('found:', entries.join(','));
});
`,
    );
    const server = await startServer(w.project, 'v2', [], { stateDir, env: { HOME: w.home } });
    const run = await server.ok('run_tests', { files: ['test/state.test.js'] });
    expect({
      outcome: run['outcome'],
      failures: (run['failures'] as Array<{ message: string }>).map((f) => f.message),
    }).toEqual({ outcome: 'failed', failures: ['the state dir is empty'] });
    expect(await readFile(path.join(stateDir, 'keys', 'cursor.key'), 'utf8')).toBe('cursor-key-secret');
  });

  it('a run made without the sandbox is never served from the cache to a sandboxed server', async () => {
    const w = await world();
    await writeFile(
      path.join(w.project, 'test', 'benign.test.js'),
      "require('node:test')('passes', () => {});\n",
    );
    const files = ['test/benign.test.js'];
    const unconfined = await startServer(w.project, 'v2', ['--sandbox', 'none'], { stateDir: w.stateDir });
    expect((await unconfined.ok('run_tests', { files }))['sandbox']).toEqual({
      kind: 'none',
      reason: 'the sandbox is turned off (--sandbox none)',
    });
    expect((await unconfined.ok('run_tests', { files }))['cached']).toBe(true);
    const confined = await startServer(w.project, 'v2', [], { stateDir: w.stateDir });
    const run = await confined.ok('run_tests', { files });
    expect({ cached: run['cached'], sandbox: run['sandbox'] }).toEqual({
      cached: false,
      sandbox: { kind: 'bwrap' },
    });
  });
});

describe('where bubblewrap cannot be had', () => {
  const setup = async () => {
    const dir = await tempDir('keel-tr-nobwrap-');
    await mkdir(path.join(dir, 'test'));
    await writeFile(path.join(dir, 'package.json'), JSON.stringify({ scripts: { test: 'node --test' } }));
    await writeFile(path.join(dir, 'test', 'ok.test.js'), "require('node:test')('passes', () => {});\n");
    return { dir, missing: path.join(dir, 'no-such-bwrap') };
  };

  it('runs unsandboxed and says so outside CI', async () => {
    const { dir, missing } = await setup();
    const server = await startServer(dir, 'v1', ['--bwrap', missing], { env: { CI: '' } });
    const result = await server.call('run_tests', {});
    const run = result.structuredContent!;
    const reason = `bwrap is not installed ('${missing}' was not found)`;
    expect({ outcome: run['outcome'], sandbox: run['sandbox'] }).toEqual({
      outcome: 'passed',
      sandbox: { kind: 'none', reason },
    });
    expect(result.content[0]?.text?.split('\n')[1]).toBe(
      `UNSANDBOXED: ${reason} — the code ran with the server's own access`,
    );
    const detected = await server.ok('detect_projects', {});
    expect(detected['sandbox']).toEqual({ kind: 'none', reason });
  });

  it('refuses to run under CI=true, and detect_projects says so before any run', async () => {
    const { dir, missing } = await setup();
    const server = await startServer(dir, 'v2', ['--bwrap', missing], { env: { CI: 'true' } });
    const detected = await server.ok('detect_projects', {});
    const message = `refusing to run code outside a sandbox under CI: bwrap is not installed ('${missing}' was not found)`;
    const hint =
      'Install bubblewrap (apt-get install bubblewrap), or pass --allow-unsandboxed to run it unconfined on purpose.';
    expect(detected['sandbox']).toEqual({ kind: 'refused', reason: `${message} — ${hint}` });
    const refused = await server.call('run_tests', {});
    expect({ isError: refused.isError, error: toolErrorOf(refused) }).toEqual({
      isError: true,
      error: { code: 'UNAVAILABLE', message, hint, retryable: false },
    });
    // Nothing of the project ran.
    expect(await exists(path.join(dir, 'ran'))).toBe(false);
  });

  it('runs under CI=true with --allow-unsandboxed, marked', async () => {
    const { dir, missing } = await setup();
    const server = await startServer(dir, 'v2', ['--bwrap', missing, '--allow-unsandboxed'], {
      env: { CI: 'true' },
    });
    const run = await server.ok('run_tests', {});
    expect({ outcome: run['outcome'], sandbox: run['sandbox'] }).toEqual({
      outcome: 'passed',
      sandbox: { kind: 'none', reason: `bwrap is not installed ('${missing}' was not found)` },
    });
  });

  it('--sandbox bwrap refuses rather than run unconfined, CI or not', async () => {
    const { dir, missing } = await setup();
    const server = await startServer(dir, 'v2', ['--bwrap', missing, '--sandbox', 'bwrap'], {
      env: { CI: '' },
    });
    const refused = await server.call('run_tests', {});
    expect(toolErrorOf(refused)).toEqual({
      code: 'UNAVAILABLE',
      message: `--sandbox bwrap was asked for, but bwrap is not installed ('${missing}' was not found)`,
      hint: 'Install bubblewrap (apt-get install bubblewrap), or start the server with --sandbox none to run code unconfined.',
      retryable: false,
    });
  });

  it('--sandbox none is marked on every run', async () => {
    const { dir } = await setup();
    const server = await startServer(dir, 'v2', ['--sandbox', 'none'], { env: { CI: 'true' } });
    const run = await server.ok('run_tests', {});
    expect({ outcome: run['outcome'], sandbox: run['sandbox'] }).toEqual({
      outcome: 'passed',
      sandbox: { kind: 'none', reason: 'the sandbox is turned off (--sandbox none)' },
    });
  });
});
