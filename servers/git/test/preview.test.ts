import { createHash } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { EffectPreview } from '@keel/kit';
import { createGitRepo, git, tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { callError, callOk, startGit, type GitClient } from './helpers.js';

const sha = (text: string) => createHash('sha256').update(text).digest('hex');
const asPreview = { 'keel/preview': true };

async function preview(client: GitClient, tool: string, args: Record<string, unknown>) {
  return (await callOk<{ preview: EffectPreview }>(client, tool, args, asPreview)).preview;
}

/** [relative path, change, +lines, -lines] of each file, for reading the expectations at a glance. */
function summary(root: string, files: EffectPreview['files']) {
  return files.map((file) => [
    path.relative(root, file.path),
    file.change,
    file.linesAdded,
    file.linesRemoved,
  ]);
}

/**
 * main: .github/workflows/ci.yml, run.sh, keep.txt; branch `rewrite` changes ci.yml (1 line for 2),
 * deletes keep.txt, adds new.txt and makes run.sh executable.
 */
async function twoBranches() {
  const repo = await createGitRepo({
    files: { '.github/workflows/ci.yml': 'on: push\njobs: {}\n', 'run.sh': 'echo\n', 'keep.txt': 'k\n' },
  });
  await repo.git(['switch', '-q', '-c', 'rewrite']);
  await repo.write('.github/workflows/ci.yml', 'on: [push, pull_request]\n');
  await repo.git(['rm', '-q', 'keep.txt']);
  await repo.write('new.txt', 'n1\nn2\n');
  await chmod(path.join(repo.dir, 'run.sh'), 0o755);
  await repo.commit('rewrite');
  await repo.git(['switch', '-q', 'main']);
  const client = await startGit('v2', [repo.dir]);
  // Listed first, so the client checks every structured result against the published output schema.
  await client.listTools();
  return { repo, client };
}

describe('the git server previews its own effects', () => {
  it('marks every mutating tool as able to preview', async () => {
    const client = await startGit('v1', [await tempDir()]);
    const tools = (await client.listTools()).tools as Array<{
      name: string;
      annotations?: Record<string, unknown>;
      _meta?: Record<string, unknown>;
    }>;
    expect(
      tools
        .map((tool) => [
          tool.name,
          tool.annotations?.['readOnlyHint'] === true,
          tool._meta?.['keel/preview'] === true,
        ])
        .filter(([, readOnly, previews]) => readOnly === previews),
    ).toEqual([]);
  });

  it('declares the tools that change no working-tree file, unless repository hooks may run', async () => {
    const declared = async (args: string[]) =>
      (
        (await (await startGit('v1', [await tempDir()], args)).listTools()).tools as Array<{
          name: string;
          _meta?: Record<string, unknown>;
        }>
      )
        .filter((tool) => tool._meta?.['keel/changes-no-files'] === true)
        .map((tool) => tool.name)
        .sort();
    expect(await declared([])).toEqual([
      'git_add',
      'git_branch_create',
      'git_commit',
      'git_fetch',
      'git_tag',
    ]);
    // A hook (pre-commit, reference-transaction) is the repository's code and may change any file.
    expect(await declared(['--enable-hooks'])).toEqual(['git_add']);
  });

  it('with --enable-hooks, no preview but that of git_add says it is whole: a hook may write any file', async () => {
    const repo = await createGitRepo({ files: { 'a.txt': 'a\n' } });
    // The repository's own pre-commit hook rewrites a file the commit's preview does not list.
    await repo.git(['config', '--unset', 'core.hooksPath']);
    await writeFile(
      path.join(repo.dir, '.git', 'hooks', 'pre-commit'),
      '#!/bin/sh\necho hooked > hooked.txt\n',
    );
    await chmod(path.join(repo.dir, '.git', 'hooks', 'pre-commit'), 0o755);
    await repo.write('a.txt', 'b\n');
    const client = await startGit('v2', [repo.dir], ['--enable-hooks']);
    await client.listTools();
    const reason =
      "--enable-hooks: this call may run the repository's hooks (pre-commit, post-checkout, reference-transaction), which may change any file";
    const staged = await preview(client, 'git_add', { repo: repo.dir, paths: ['a.txt'] });
    expect([staged.files, staged.complete]).toEqual([[], true]);
    await callOk(client, 'git_add', { repo: repo.dir, paths: ['a.txt'] });
    const commit = await preview(client, 'git_commit', { repo: repo.dir, message: 'b' });
    expect([commit.files, commit.complete, commit.reason]).toEqual([[], false, reason]);
    // And the hook does what the preview warns of.
    await callOk(client, 'git_commit', { repo: repo.dir, message: 'b' });
    expect(await readFile(path.join(repo.dir, 'hooked.txt'), 'utf8')).toBe('hooked\n');
    // A preview that lists files keeps them, and says why they may not be all.
    await repo.write('a.txt', 'c\n');
    const restore = await preview(client, 'git_restore', {
      repo: repo.dir,
      paths: ['a.txt'],
      mode: 'discard',
    });
    expect([summary(repo.dir, restore.files), restore.complete, restore.reason]).toEqual([
      [['a.txt', 'modify', 1, 1]],
      false,
      reason,
    ]);
    for (const [tool, args] of [
      ['git_tag', { repo: repo.dir, action: 'create', name: 'v1' }],
      ['git_branch_create', { repo: repo.dir, name: 'side' }],
      ['git_reset', { repo: repo.dir, target: 'HEAD', mode: 'mixed' }],
    ] as const)
      expect([tool, (await preview(client, tool, args)).complete]).toEqual([tool, false]);
  });

  it('git_switch previews every working-tree file it rewrites, and is bound to the branch it saw', async () => {
    const { repo, client } = await twoBranches();
    const switched = await preview(client, 'git_switch', { branch: 'rewrite' });
    const head = (await repo.git(['rev-parse', 'main'])).trim();
    const target = (await repo.git(['rev-parse', 'rewrite'])).trim();
    expect([summary(repo.dir, switched.files), switched.complete, switched.basis]).toEqual([
      [
        ['.github/workflows/ci.yml', 'modify', 1, 2],
        ['keep.txt', 'delete', 0, 1],
        ['new.txt', 'create', 2, 0],
        ['run.sh', 'mode', 0, 0],
      ],
      true,
      [`HEAD ${head}`, `target ${target}`],
    ]);
    expect(switched.files.map((file) => file.sha256Before)).toEqual([
      sha('on: push\njobs: {}\n'),
      sha('k\n'),
      null,
      sha('echo\n'),
    ]);
    // The branch moves between the preview and the call: the call is refused and nothing changes.
    await repo.git(['update-ref', 'refs/heads/rewrite', head]);
    const refused = await callError(
      client,
      'git_switch',
      { branch: 'rewrite' },
      { 'keel/expect-preview': switched.binding },
    );
    expect([refused.code, (await repo.git(['branch', '--show-current'])).trim()]).toEqual([
      'PRECONDITION_FAILED',
      'main',
    ]);
    await repo.git(['update-ref', 'refs/heads/rewrite', target]);
    await callOk(client, 'git_switch', { branch: 'rewrite' }, { 'keel/expect-preview': switched.binding });
    expect(await readFile(path.join(repo.dir, '.github/workflows/ci.yml'), 'utf8')).toBe(
      'on: [push, pull_request]\n',
    );
  });

  it('git_reset --hard, git_restore discard and git_stash preview what they throw away', async () => {
    const { repo, client } = await twoBranches();
    await repo.write('.github/workflows/ci.yml', 'on: push\njobs: {}\nextra: 1\n');
    await repo.write('untracked.txt', 'u\n');
    expect(
      summary(repo.dir, (await preview(client, 'git_reset', { target: 'rewrite', mode: 'hard' })).files),
    ).toEqual([
      ['.github/workflows/ci.yml', 'modify', 1, 3],
      ['keep.txt', 'delete', 0, 1],
      ['new.txt', 'create', 2, 0],
      ['run.sh', 'mode', 0, 0],
    ]);
    expect((await preview(client, 'git_reset', { target: 'rewrite', mode: 'mixed' })).files).toEqual([]);
    expect(
      summary(repo.dir, (await preview(client, 'git_restore', { paths: ['.'], mode: 'discard' })).files),
    ).toEqual([['.github/workflows/ci.yml', 'modify', 0, 1]]);
    expect((await preview(client, 'git_restore', { paths: ['.'], mode: 'unstage' })).files).toEqual([]);
    const pushed = await preview(client, 'git_stash', { action: 'push', includeUntracked: true });
    expect(summary(repo.dir, pushed.files)).toEqual([
      ['.github/workflows/ci.yml', 'modify', 0, 1],
      ['untracked.txt', 'delete', 0, 1],
    ]);
    await callOk(
      client,
      'git_stash',
      { action: 'push', includeUntracked: true },
      { 'keel/expect-preview': pushed.binding },
    );
    const popped = await preview(client, 'git_stash', { action: 'pop' });
    expect([summary(repo.dir, popped.files), popped.complete]).toEqual([
      [
        ['.github/workflows/ci.yml', 'modify', 1, 0],
        ['untracked.txt', 'create', 1, 0],
      ],
      true,
    ]);
  });

  it('staging, committing, refs and fetching change no working-tree file', async () => {
    const { repo, client } = await twoBranches();
    await repo.write('keep.txt', 'k2\n');
    for (const [tool, args] of [
      ['git_add', { all: true }],
      ['git_commit', { message: 'x', all: true }],
      ['git_tag', { action: 'create', name: 'v1' }],
      ['git_branch_create', { name: 'side' }],
    ] as const) {
      expect([tool, await preview(client, tool, args)]).toEqual([
        tool,
        { complete: true, files: [], binding: sha(JSON.stringify({ basis: [], files: [] })) },
      ]);
    }
    // A refused precondition shows in the preview as it would in the call.
    expect((await callError(client, 'git_add', {}, asPreview)).code).toBe('INVALID_ARGUMENT');
  });

  it('git_push says what it publishes and what it would rewrite; git_pull is never complete', async () => {
    const root = await tempDir();
    await mkdir(path.join(root, 'work'));
    const repo = await createGitRepo({ dir: path.join(root, 'work'), files: { 'a.txt': 'a\n' } });
    await git(root, ['init', '-q', '--bare', 'hub.git']);
    await repo.git(['remote', 'add', 'origin', path.join(root, 'hub.git')]);
    await repo.git(['push', '-q', 'origin', 'main']);
    await repo.git(['fetch', '-q', 'origin']);
    const client = await startGit('v2', [root], ['--push-remote', 'origin', '--allow-force-push']);
    const base = (await repo.git(['rev-parse', 'HEAD'])).trim();
    const next = await repo.commit('two', { 'a.txt': 'a\nb\n' });
    const pushed = await preview(client, 'git_push', { repo: 'work' });
    expect([pushed.files, pushed.irreversible]).toEqual([
      [],
      `publishes 1 commit(s) (${base.slice(0, 12)}..${next.slice(0, 12)}) to origin/main; published commits cannot be called back`,
    ]);
    await repo.git(['reset', '-q', '--hard', base]);
    const other = await repo.commit('other', { 'b.txt': 'b\n' });
    await repo.git(['update-ref', 'refs/remotes/origin/main', next]);
    expect((await preview(client, 'git_push', { repo: 'work', force: 'with-lease' })).irreversible).toBe(
      `rewrites origin/main: 1 commit(s) there and not in ${other.slice(0, 12)} are dropped from the remote`,
    );
    await repo.git(['reset', '-q', '--hard', base]);
    const pulled = await preview(client, 'git_pull', { repo: 'work' });
    expect([summary(repo.dir, pulled.files), pulled.complete, pulled.reason]).toEqual([
      [['a.txt', 'modify', 1, 0]],
      false,
      `the pull fetches first; this is what integrating origin/main as last fetched (${next.slice(0, 12)}) would write, without what the fetch brings`,
    ]);
    expect((await preview(client, 'git_fetch', { repo: 'work' })).files).toEqual([]);
  });

  it('a new worktree, clone or repository previews what it creates; removing a worktree, what it deletes', async () => {
    const root = await tempDir();
    await mkdir(path.join(root, 'work'));
    const repo = await createGitRepo({
      dir: path.join(root, 'work'),
      files: { 'a.txt': 'a\n', 'd/b.txt': 'b\nb\n' },
    });
    const client = await startGit('v2', [root]);
    const added = await preview(client, 'git_worktree_add', { repo: 'work', path: 'wt', branch: 'wt' });
    expect(summary(root, added.files)).toEqual([
      ['wt/.git', 'create', 0, 0],
      ['wt/a.txt', 'create', 1, 0],
      ['wt/d/b.txt', 'create', 2, 0],
    ]);
    const cloned = await preview(client, 'git_clone', { url: 'work', path: 'copy' });
    expect([summary(root, cloned.files), cloned.complete]).toEqual([
      [
        ['copy/.git', 'create', 0, 0],
        ['copy/a.txt', 'create', 1, 0],
        ['copy/d/b.txt', 'create', 2, 0],
      ],
      true,
    ]);
    expect(summary(root, (await preview(client, 'git_init', { path: 'fresh' })).files)).toEqual([
      ['fresh', 'create', 0, 0],
      ['fresh/.git', 'create', 0, 0],
    ]);
    await callOk(
      client,
      'git_worktree_add',
      { repo: 'work', path: 'wt', branch: 'wt' },
      { 'keel/expect-preview': added.binding },
    );
    await writeFile(path.join(root, 'wt', 'scratch.txt'), 's\n');
    const removed = await preview(client, 'git_worktree_remove', { repo: 'work', path: 'wt', force: true });
    expect(summary(root, removed.files)).toEqual([
      ['wt/.git', 'delete', 0, 1],
      ['wt/a.txt', 'delete', 0, 1],
      ['wt/d/b.txt', 'delete', 0, 2],
      ['wt/scratch.txt', 'delete', 0, 1],
    ]);
    expect(repo.dir).toBe(path.join(root, 'work'));
  });
});
