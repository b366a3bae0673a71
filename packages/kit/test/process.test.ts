import { readFileSync } from 'node:fs';
import { mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createPathJail } from '../src/jail.js';
import { runProcess } from '../src/process.js';

let dir: string;
beforeEach(async () => {
  dir = await realpath(await mkdtemp(path.join(tmpdir(), 'keel-proc-')));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const node = process.execPath;
// A killed grandchild is reparented to init; until init reaps it, it is a zombie that kill(pid, 0)
// still finds, so read its state instead.
const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
};

describe('runProcess', () => {
  it('passes arguments literally, never through a shell', async () => {
    const result = await runProcess({
      command: node,
      args: [
        '-e',
        'process.stdout.write(JSON.stringify(process.argv.slice(1)))',
        '; touch pwned',
        '$(id)',
        '`id`',
        '--flag',
      ],
      cwd: dir,
      timeoutMs: 10_000,
      maxOutputBytes: 10_000,
    });
    expect(JSON.parse(result.stdout.text)).toEqual(['; touch pwned', '$(id)', '`id`', '--flag']);
    expect(result.exitCode).toBe(0);
  });

  it('gives the child only allowlisted environment variables', async () => {
    const result = await runProcess({
      command: node,
      args: [
        '-e',
        'process.stdout.write(JSON.stringify([process.env.SECRET_TOKEN ?? null, process.env.EXTRA ?? null, Boolean(process.env.PATH)]))',
      ],
      cwd: dir,
      baseEnv: { PATH: process.env['PATH'], SECRET_TOKEN: 'hunter2' },
      env: { EXTRA: 'yes' },
      timeoutMs: 10_000,
      maxOutputBytes: 10_000,
    });
    expect(JSON.parse(result.stdout.text)).toEqual([null, 'yes', true]);
  });

  it('kills the whole process group on timeout', async () => {
    // The child starts a grandchild that would outlive a plain kill of the child.
    const script = `
      const { spawn } = require('node:child_process');
      const g = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
      process.stdout.write(String(g.pid) + '\\n');
      setInterval(() => {}, 1000);
    `;
    const result = await runProcess({
      command: node,
      args: ['-e', script],
      cwd: dir,
      timeoutMs: 500,
      maxOutputBytes: 1000,
      killGraceMs: 200,
    });
    expect(result.timedOut).toBe(true);
    expect(result.exitCode).toBe(null);
    expect(result.signal).toBe('SIGTERM');
    const grandchild = Number(result.stdout.text.trim());
    expect(grandchild).toBeGreaterThan(0);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(alive(grandchild)).toBe(false);
  });

  it('stops on cancel and says so', async () => {
    const controller = new AbortController();
    const running = runProcess({
      command: node,
      args: ['-e', 'setInterval(() => {}, 1000)'],
      cwd: dir,
      timeoutMs: 60_000,
      maxOutputBytes: 1000,
      signal: controller.signal,
    });
    setTimeout(() => controller.abort(), 200);
    const result = await running;
    expect([result.cancelled, result.timedOut, result.signal]).toEqual([true, false, 'SIGTERM']);
  });

  it('caps output, keeping head and tail', async () => {
    const result = await runProcess({
      command: node,
      args: ['-e', "process.stdout.write('A'.repeat(1000) + 'B'.repeat(100000) + 'C'.repeat(1000))"],
      cwd: dir,
      timeoutMs: 10_000,
      maxOutputBytes: 2000,
    });
    expect(result.stdout.totalBytes).toBe(102_000);
    expect(result.stdout.droppedBytes).toBe(100_000);
    expect(result.stdout.text).toBe(`${'A'.repeat(1000)}\n[… 100000 bytes omitted …]\n${'C'.repeat(1000)}`);
  });

  it('reports exit codes and a missing program', async () => {
    const failed = await runProcess({
      command: node,
      args: ['-e', 'process.exit(3)'],
      cwd: dir,
      timeoutMs: 10_000,
      maxOutputBytes: 100,
    });
    expect([failed.exitCode, failed.signal]).toEqual([3, null]);
    await expect(
      runProcess({
        command: 'keel-no-such-program',
        args: [],
        cwd: dir,
        timeoutMs: 1000,
        maxOutputBytes: 100,
      }),
    ).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      message: "program 'keel-no-such-program' was not found",
    });
  });

  it('refuses a working directory outside the jail', async () => {
    const jail = await createPathJail([path.join(dir)]);
    await expect(
      runProcess({
        command: node,
        args: ['-e', ''],
        cwd: tmpdir(),
        jail,
        timeoutMs: 1000,
        maxOutputBytes: 100,
      }),
    ).rejects.toMatchObject({ code: 'OUTSIDE_ROOTS' });
  });
});
