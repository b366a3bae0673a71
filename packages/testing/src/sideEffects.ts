import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { tempDir } from './tempDir.js';

/** What importing a module did, observed from a fresh Node process. */
export interface ImportEffects {
  /** Handles and requests still alive a tick after the import, beyond a bare process's own. */
  resources: string[];
  /** What the import wrote (a library must write nothing). */
  stdout: string;
  stderr: string;
  /** Files that appeared in the working directory, HOME or the state directory. */
  files: string[];
  /** The process ended by itself (an import that starts a server or a timer keeps it alive). */
  exited: boolean;
}

// The baseline opens stdout and stderr first: the MCP SDK touches them on import (which opens their
// pipes), and what is written to them is checked on its own.
const probe = (specifier: string) => `
void process.stdout;
void process.stderr;
const before = process.getActiveResourcesInfo();
await import(${JSON.stringify(specifier)});
await new Promise((resolve) => setImmediate(resolve));
const after = process.getActiveResourcesInfo();
for (const name of before) after.splice(after.indexOf(name), 1);
process.stdout.write('\\n' + JSON.stringify(after));
`;

/**
 * Imports `specifier` in a fresh Node process whose cwd, HOME and XDG_STATE_HOME are empty temp
 * directories, and reports what the import left behind. `from` is a directory whose node_modules
 * resolve the specifier (the importing package).
 */
export async function importEffects(specifier: string, from: string): Promise<ImportEffects> {
  const home = await tempDir('keel-import-home-');
  const state = await tempDir('keel-import-state-');
  const child = spawn(process.execPath, ['--input-type=module', '-e', probe(specifier)], {
    cwd: from,
    env: { PATH: process.env['PATH'] ?? '', HOME: home, XDG_STATE_HOME: state },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve(false);
    }, 10_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
  const cut = stdout.lastIndexOf('\n');
  const files = [...(await readdir(home)), ...(await readdir(state))];
  return {
    resources: cut === -1 ? ['(no report)'] : (JSON.parse(stdout.slice(cut + 1)) as string[]),
    stdout: cut === -1 ? stdout : stdout.slice(0, cut),
    stderr,
    files,
    exited,
  };
}
