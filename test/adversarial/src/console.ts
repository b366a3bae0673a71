import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { onTestFinished } from 'vitest';
import { keelBin, type Project } from './world.js';

/**
 * `keel console --port 0` of the project, as a person starts it (no token set beforehand: it makes
 * its own). Resolves with the URL it prints; stopped with Ctrl-C when the test ends.
 */
export async function startConsole(p: Project): Promise<{ url: string }> {
  const child = spawn(process.execPath, [keelBin, 'console', '--port', '0', '--config', p.configFile], {
    cwd: p.dir,
    env: { ...process.env, NO_COLOR: '1', KEEL_CONSOLE_TOKEN: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    await exited;
  });
  // A hang guard, not a timing assertion: the test's own timeout ends a console that never listens.
  for (;;) {
    const url = /keel console on (\S+)/.exec(stdout)?.[1];
    if (url !== undefined) return { url };
    if (child.exitCode !== null) throw new Error(`keel console exited (${child.exitCode}):\n${stderr}`);
    await sleep(50);
  }
}
