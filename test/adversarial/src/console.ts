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

/**
 * The console as the person who opened the printed URL uses it: the token traded for its cookie,
 * the page's token read, then POSTs as the page sends them. Answers each with its status and body.
 */
export async function asThePerson(url: string) {
  const token = new URL(url).searchParams.get('token') ?? '';
  const cookie = `keel_console_token=${token}`;
  const base = new URL('/', url);
  const page = await (await fetch(base, { headers: { cookie } })).text();
  const pageToken = /name="keel-page-token" content="([^"]+)"/.exec(page)?.[1] ?? '';
  return {
    async post(path: string, body: unknown): Promise<{ status: number; body: unknown }> {
      const res = await fetch(new URL(path, base), {
        method: 'POST',
        headers: {
          cookie,
          origin: base.origin,
          'content-type': 'application/json',
          'x-keel-page-token': pageToken,
        },
        body: JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as unknown };
    },
  };
}
