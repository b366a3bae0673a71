import { connectStdio, tempDir, type ClientKind, type McpTestClient } from '@keel/testing';

export const binPath = new URL('../dist/bin.js', import.meta.url).pathname;

export type GitClient = McpTestClient & { stderr: () => string; pid: number | undefined };

/** Starts keel-git over stdio with the given roots and flags, and a fresh state dir unless one is given. */
export async function startGit(
  kind: ClientKind,
  roots: readonly string[],
  flags: readonly string[] = [],
  stateDir?: string,
): Promise<GitClient> {
  const state = stateDir ?? (await tempDir('keel-git-state-'));
  return await connectStdio(
    {
      command: process.execPath,
      args: [
        binPath,
        ...roots.flatMap((root) => ['--root', root]),
        '--state-dir',
        state,
        '--log-level',
        'warn',
        ...flags,
      ],
    },
    kind,
  );
}

export { callErr as callError, callOk } from '@keel/testing';
