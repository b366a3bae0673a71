import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectStdio, tempDir, type BinCommand, type ClientKind, type McpTestClient } from '@keel/testing';

export const binPath = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'bin.js');

/** The built bin with these roots and flags, and a state dir of its own. */
export async function fsBin(roots: readonly string[], flags: readonly string[] = []): Promise<BinCommand> {
  const state = await tempDir('keel-fs-state-');
  return {
    command: process.execPath,
    args: [
      binPath,
      ...roots.flatMap((root) => ['--root', root]),
      '--state-dir',
      state,
      '--log-level',
      'error',
      ...flags,
    ],
  };
}

export type Client = McpTestClient & { stderr: () => string; pid: number | undefined };

/** A client connected to a fresh server over stdio. */
export async function connect(
  roots: readonly string[],
  kind: ClientKind = 'v2',
  flags: readonly string[] = [],
): Promise<Client> {
  return await connectStdio(await fsBin(roots, flags), kind);
}

export { callErr, callOk } from '@keel/testing';

export const kinds: ClientKind[] = ['v2', 'v1'];

/** Whether an `rg` is on the PATH, so that search_text takes its native path by default. */
export const ripgrepOnPath = (process.env['PATH'] ?? '').split(path.delimiter).some((dir) => {
  try {
    accessSync(path.join(dir, 'rg'), constants.X_OK);
    return dir !== '';
  } catch {
    return false;
  }
});
