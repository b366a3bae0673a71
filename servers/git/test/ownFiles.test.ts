import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createGitRepo, git } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { callError, callOk, startGit } from './helpers.js';

/**
 * A repository whose server keeps its state in the work tree (`--state-dir REPO/.keel`, as a careless
 * config does), with an ordinary untracked file beside it. A mutating call first, so the state
 * database exists.
 */
async function stateInRepo() {
  const repo = await createGitRepo({ files: { 'a.txt': 'a\n' } });
  const state = path.join(repo.dir, '.keel');
  const client = await startGit('v2', [repo.dir], [], state);
  await callOk(client, 'git_branch_create', { name: 'side', idempotencyKey: 'k0' });
  await repo.write('notes.txt', 'notes\n');
  return { repo, state, client };
}

describe("Keel's own files in a repository's work tree", () => {
  it('are neither listed, staged, committed nor stashed, while the files beside them are', async () => {
    const { repo, state, client } = await stateInRepo();
    const key = await readFile(path.join(state, 'cursor.key'));
    const status = await callOk<{ untracked: string[] }>(client, 'git_status', {});
    expect(status.untracked).toEqual(['notes.txt']);

    const staged = await callOk<{ staged: string[] }>(client, 'git_add', { all: true });
    expect(staged.staged).toEqual(['notes.txt']);
    await callOk(client, 'git_add', { paths: ['.'] });
    const committed = await callOk<{ files: string[] }>(client, 'git_commit', { message: 'notes' });
    expect(committed.files).toEqual(['notes.txt']);
    expect((await repo.git(['ls-tree', '-r', '--name-only', 'HEAD'])).split('\n').filter(Boolean)).toEqual([
      'a.txt',
      'notes.txt',
    ]);

    await repo.write('later.txt', 'later\n');
    await callOk(client, 'git_stash', { action: 'push', includeUntracked: true });
    expect(existsSync(path.join(repo.dir, 'later.txt'))).toBe(false);
    expect(await readFile(path.join(state, 'cursor.key'))).toEqual(key);
    expect((await readdir(state)).filter((name) => name === 'cursor.key' || name === 'keel.db')).toEqual([
      'cursor.key',
      'keel.db',
    ]);
  });

  it('are refused when a tool names them, through its paths or as a repository', async () => {
    const { repo, state, client } = await stateInRepo();
    // A work tree whose .git file points into the state dir: git would write its index there.
    await git(state, ['init', '-q', 'planted']);
    await mkdir(path.join(repo.dir, 'evil'));
    await writeFile(path.join(repo.dir, 'evil', '.git'), 'gitdir: ../.keel/planted/.git\n');
    const attacks: Array<[string, Record<string, unknown>]> = [
      ['git_add', { paths: ['.keel/cursor.key'] }],
      ['git_add', { paths: ['sub/../.keel'] }],
      ['git_diff', { paths: ['.keel'] }],
      ['git_blame', { path: '.keel/cursor.key' }],
      ['git_restore', { paths: ['.keel/keel.db'], mode: 'discard' }],
      ['git_stash', { action: 'push', paths: ['.keel'], includeUntracked: true }],
      ['git_status', { repo: '.keel' }],
      ['git_status', { repo: 'evil' }],
      ['git_worktree_add', { path: '.keel/wt', branch: 'wt' }],
      ['git_init', { path: '.keel/repo' }],
      ['git_clone', { url: '.', path: '.keel/clone' }],
    ];
    const codes: string[] = [];
    for (const [tool, args] of attacks) codes.push(`${tool} ${(await callError(client, tool, args)).code}`);
    expect(codes).toEqual(attacks.map(([tool]) => `${tool} PERMISSION_DENIED`));
    expect((await readdir(state)).filter((name) => !name.startsWith('keel.db')).sort()).toEqual([
      'cursor.key',
      'planted',
    ]);
    // The benign twin: the same tools on the file beside them.
    expect((await callOk<{ staged: string[] }>(client, 'git_add', { paths: ['notes.txt'] })).staged).toEqual([
      'notes.txt',
    ]);
  });
});
