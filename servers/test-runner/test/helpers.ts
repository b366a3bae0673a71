import { cp, readdir, readFile, readlink, symlink } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  connectStdio,
  tempDir,
  type ClientKind,
  type McpTestClient,
  type ToolCallResult,
} from '@keel/testing';
import { expect } from 'vitest';

const packageDir = fileURLToPath(new URL('..', import.meta.url));
export const binPath = path.join(packageDir, 'dist', 'bin.js');
const fixturesDir = path.join(packageDir, 'test', 'fixtures');
/**
 * JS fixtures link their node_modules to this package's, whose pnpm links lead into the workspace's:
 * outside the test's root, so the sandbox is told to let runs read them.
 */
const exposeDependencies = [
  '--sandbox-expose',
  path.join(packageDir, 'node_modules'),
  '--sandbox-expose',
  path.join(packageDir, '..', '..', 'node_modules'),
];

/**
 * A fresh copy of a fixture project in a temp dir. JS fixtures get a `node_modules` link to this
 * package's, so they resolve jest/mocha/vitest the way an installed project would.
 */
export async function copyFixture(name: string, into?: string): Promise<string> {
  const dir = into ?? (await tempDir(`keel-tr-${name}-`));
  await cp(path.join(fixturesDir, name), dir, { recursive: true });
  if (['vitest', 'jest', 'mocha', 'node-test', 'tape', 'npm-test'].includes(name)) {
    await symlink(path.join(packageDir, 'node_modules'), path.join(dir, 'node_modules'));
  }
  return dir;
}

export interface Server {
  client: McpTestClient;
  stateDir: string;
  call(
    tool: string,
    args?: Record<string, unknown>,
    options?: Parameters<McpTestClient['callTool']>[1],
  ): Promise<ToolCallResult>;
  /** Calls and expects success; returns the structured result. */
  ok(tool: string, args?: Record<string, unknown>): Promise<Record<string, unknown>>;
}

export async function startServer(
  root: string,
  kind: ClientKind,
  extraArgs: string[] = [],
  options: { stateDir?: string; env?: Record<string, string> } = {},
): Promise<Server> {
  const stateDir = options.stateDir ?? (await tempDir('keel-tr-state-'));
  const client = await connectStdio(
    {
      command: process.execPath,
      args: [
        binPath,
        '--root',
        root,
        '--state-dir',
        stateDir,
        '--log-level',
        'warn',
        ...exposeDependencies,
        ...extraArgs,
      ],
      ...(options.env === undefined ? {} : { env: options.env }),
    },
    kind,
  );
  const call: Server['call'] = (tool, args = {}, options) =>
    client.callTool({ name: tool, arguments: args }, { timeout: 120_000, ...options });
  return {
    client,
    stateDir,
    call,
    async ok(tool, args = {}) {
      const result = await call(tool, args);
      if (result.isError) expect.fail(`${tool} failed: ${result.content[0]?.text}`);
      return result.structuredContent!;
    },
  };
}

/** Pids of live processes whose working directory is `dir` or below it (Linux /proc). */
export async function processesIn(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cwd = await readlink(`/proc/${entry}/cwd`).catch(() => undefined);
    if (cwd !== undefined && (cwd === dir || cwd.startsWith(`${dir}/`))) pids.push(Number(entry));
  }
  return pids;
}

/**
 * The host pid of a process working in `dir` that knows itself as `pid`: test runs live in the
 * sandbox's own PID namespace, so the pid a test writes down is not the host's.
 */
export async function hostPid(dir: string, pid: number): Promise<number | undefined> {
  for (const candidate of await processesIn(dir)) {
    const status = await readFile(`/proc/${candidate}/status`, 'utf8').catch(() => '');
    const pids = /^NSpid:\s+(.+)$/m.exec(status)?.[1]?.trim().split(/\s+/).map(Number);
    if (pids?.at(-1) === pid) return candidate;
  }
  return undefined;
}

/** Waits (bounded) for every process working in `dir` to be gone; returns the ones still there. */
export async function settledProcessesIn(dir: string): Promise<number[]> {
  let left = await processesIn(dir);
  for (let i = 0; i < 100 && left.length > 0; i++) {
    await sleep(50);
    left = await processesIn(dir);
  }
  return left;
}
