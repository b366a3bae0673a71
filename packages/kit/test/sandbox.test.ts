import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { access, mkdir, mkdtemp, realpath, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runProcess } from '../src/process.js';
import { createSandbox, sandboxHome, type Sandbox } from '../src/sandbox.js';

let dir: string;
beforeEach(async () => {
  dir = await realpath(await mkdtemp(path.join(tmpdir(), 'keel-sandbox-')));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const bwrapWorks =
  spawnSync('bwrap', ['--unshare-user', '--unshare-net', '--ro-bind', '/', '/', 'true']).status === 0;
if (!bwrapWorks)
  console.warn('bwrap tests skipped: bwrap is missing or cannot run here (apt-get install bubblewrap)');

// Only meaningful where /etc/shadow exists and other users may not read it (Debian's default).
const shadowMode = statSync('/etc/shadow', { throwIfNoEntry: false })?.mode;
const shadowPrivate = shadowMode !== undefined && (shadowMode & 0o004) === 0;

const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

/** Runs a shell script through the sandbox; stdout and the exit code. */
async function sh(sandbox: Sandbox, script: string, writable: string[], cwd = writable[0]!) {
  const wrapped = await sandbox.wrap({
    command: 'sh',
    args: ['-c', script],
    cwd,
    writable,
    pathVariable: process.env['PATH'] ?? '/usr/bin:/bin',
  });
  if (!wrapped.ok) throw new Error(wrapped.error.message);
  const result = await runProcess({
    command: wrapped.value.command,
    args: wrapped.value.args,
    cwd,
    env: wrapped.value.env,
    timeoutMs: 60_000,
    maxOutputBytes: 65_536,
  });
  return { code: result.exitCode, out: result.stdout.text.trim(), sandbox: wrapped.value.sandbox };
}

describe.skipIf(!bwrapWorks)('createSandbox with bubblewrap', () => {
  it('lets a run change only its writable dirs, with a private HOME and /tmp and no network', async () => {
    const root = path.join(dir, 'root');
    const outside = path.join(dir, 'outside');
    await mkdir(root);
    await mkdir(outside);
    await writeFile(path.join(outside, 'secret'), 'secret');
    const sandbox = createSandbox({ mode: 'auto' });
    const script = [
      'echo inside > made.txt && echo wrote-root',
      `cat '${path.join(outside, 'secret')}' 2>/dev/null || echo no-outside`,
      `touch '${path.join(outside, 'planted')}' 2>/dev/null || echo no-plant`,
      'echo "home=$HOME tmp=$TMPDIR"',
      'touch "$HOME/cache" /tmp/scratch && echo home-and-tmp-writable',
      'touch /usr/planted 2>/dev/null || echo usr-read-only',
      'cat /proc/net/dev | grep -c : ',
    ].join('; ');
    const run = await sh(sandbox, script, [root]);
    expect(run).toEqual({
      code: 0,
      out: [
        'wrote-root',
        'no-outside',
        'no-plant',
        `home=${sandboxHome} tmp=/tmp`,
        'home-and-tmp-writable',
        'usr-read-only',
        // Only the loopback of a fresh network namespace.
        '1',
      ].join('\n'),
      sandbox: { kind: 'bwrap' },
    });
    expect(await exists(path.join(root, 'made.txt'))).toBe(true);
    expect(await exists(path.join(outside, 'planted'))).toBe(false);
  });

  it('masks hidden paths inside a root, and never creates a missing one', async () => {
    const root = path.join(dir, 'root');
    await mkdir(path.join(root, '.keel'), { recursive: true });
    await writeFile(path.join(root, '.keel', 'cursor.key'), 'key');
    await writeFile(path.join(root, 'keel.config.yaml'), 'steps: 10');
    const sandbox = createSandbox({
      mode: 'bwrap',
      hidden: [path.join(root, '.keel'), path.join(root, 'keel.config.yaml'), path.join(root, 'absent')],
    });
    const run = await sh(
      sandbox,
      'ls -A .keel | wc -l; cat keel.config.yaml 2>/dev/null || echo unreadable',
      [root],
    );
    expect(run.out).toBe('0\nunreadable');
    expect(await exists(path.join(root, 'absent'))).toBe(false);
    expect((await stat(path.join(root, '.keel', 'cursor.key'))).size).toBe(3);
  });

  it.skipIf(!shadowPrivate)('masks what only root may read under /etc', async () => {
    const root = path.join(dir, 'root');
    await mkdir(root);
    const run = await sh(
      createSandbox({ mode: 'bwrap' }),
      'cat /etc/shadow 2>/dev/null || echo unreadable; test -r /etc/passwd && echo passwd',
      [root],
    );
    expect(run.out).toBe('unreadable\npasswd');
  });

  it('says a missing program is missing, as an unsandboxed run would', async () => {
    const wrapped = await createSandbox({ mode: 'bwrap' }).wrap({
      command: 'no-such-program-here',
      args: [],
      cwd: dir,
      writable: [dir],
      pathVariable: '/usr/bin:/bin',
    });
    expect(wrapped).toEqual({
      ok: false,
      error: {
        code: 'UNAVAILABLE',
        message: "program 'no-such-program-here' was not found",
        hint: "Install no-such-program-here or put it on the server's PATH.",
        retryable: false,
      },
    });
  });
});

describe('createSandbox without bubblewrap', () => {
  const missing = () => path.join(dir, 'no-bwrap');
  const reason = () => `bwrap is not installed ('${missing()}' was not found)`;

  it('auto runs the command as it is and says why', async () => {
    const sandbox = createSandbox({ mode: 'auto', bwrapPath: missing() });
    expect(await sandbox.wrap({ command: 'true', args: ['x'], cwd: dir, writable: [dir] })).toEqual({
      ok: true,
      value: { command: 'true', args: ['x'], env: {}, sandbox: { kind: 'none', reason: reason() } },
    });
  });

  it('auto refuses when a sandbox is required (CI)', async () => {
    const sandbox = createSandbox({ mode: 'auto', bwrapPath: missing(), requireSandbox: true });
    expect(await sandbox.status()).toEqual({
      ok: false,
      error: {
        code: 'UNAVAILABLE',
        message: `refusing to run code outside a sandbox under CI: ${reason()}`,
        hint: 'Install bubblewrap (apt-get install bubblewrap), or pass --allow-unsandboxed to run it unconfined on purpose.',
        retryable: false,
      },
    });
  });

  it('none never probes and says it is off', async () => {
    expect(await createSandbox({ mode: 'none', bwrapPath: missing() }).status()).toEqual({
      ok: true,
      value: { kind: 'none', reason: 'the sandbox is turned off (--sandbox none)' },
    });
  });
});
