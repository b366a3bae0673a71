import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createGitRepo, git, tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { callError, callOk, startGit } from './helpers.js';

describe.each(['v2', 'v1'] as const)('keel-git over stdio with a %s client', (kind) => {
  it('lists every tool with annotations true to its effect', async () => {
    const root = await tempDir();
    const client = await startGit(kind, [root]);
    const { tools } = await client.listTools();
    const byName = Object.fromEntries(tools.map((tool) => [tool.name, tool.annotations]));
    const summary = Object.fromEntries(
      Object.entries(byName).map(([name, a]) => [
        name,
        `${a?.['readOnlyHint'] ? 'ro' : 'rw'}${a?.['destructiveHint'] ? ' destructive' : ''}${a?.['idempotentHint'] ? ' idempotent' : ''}${a?.['openWorldHint'] ? ' open' : ''}`,
      ]),
    );
    expect(summary).toEqual({
      git_status: 'ro idempotent',
      git_diff: 'ro idempotent',
      git_log: 'ro idempotent',
      git_show: 'ro idempotent',
      git_blame: 'ro idempotent',
      git_branch_list: 'ro idempotent',
      git_branch_create: 'rw idempotent',
      git_switch: 'rw idempotent',
      git_add: 'rw idempotent',
      git_restore: 'rw destructive idempotent',
      git_commit: 'rw',
      git_reset: 'rw destructive',
      git_stash: 'rw',
      git_tag: 'rw idempotent',
      git_fetch: 'rw idempotent open',
      git_pull: 'rw open',
      git_push: 'rw destructive idempotent open',
      git_worktree_add: 'rw',
      git_worktree_list: 'ro idempotent',
      git_worktree_remove: 'rw destructive',
      git_init: 'rw idempotent',
      git_clone: 'rw open',
    });
  });

  it('git_commit describes an empty commit, a merge, a branch a tag shares its name with, and a detached HEAD', async () => {
    const repo = await createGitRepo({ files: { 'a.txt': 'a\n' } });
    const client = await startGit(kind, [repo.dir]);
    const sha = async (rev: string) => (await repo.git(['rev-parse', rev])).trim();

    const empty = await callOk(client, 'git_commit', { message: 'nothing changed', allowEmpty: true });
    expect(empty).toEqual({
      repo: '.',
      branch: 'main',
      sha: await sha('HEAD'),
      parents: [await sha('HEAD~1')],
      subject: 'nothing changed',
      files: [],
      filesChanged: 0,
    });

    // A merge lists what it brought in over its first parent; a name starting with a newline stays whole.
    await repo.git(['switch', '-q', '-c', 'side']);
    await repo.write('\nodd name', 'x\n');
    await repo.git(['add', '--', '\nodd name']);
    await repo.git(['commit', '-q', '-m', 'side']);
    await repo.git(['switch', '-q', 'main']);
    await repo.write('b.txt', 'b\n');
    await repo.git(['add', 'b.txt']);
    await repo.git(['commit', '-q', '-m', 'main']);
    await repo.git(['merge', '-q', '--no-commit', 'side']);
    const merge = await callOk(client, 'git_commit', { message: 'Merge side' });
    expect(merge).toEqual({
      repo: '.',
      branch: 'main',
      sha: await sha('HEAD'),
      parents: [await sha('HEAD^1'), await sha('side')],
      subject: 'Merge side',
      files: ['\nodd name'],
      filesChanged: 1,
    });

    // git's --short would call this branch `heads/main`: a tag named main makes `main` ambiguous.
    await repo.git(['tag', 'main', 'HEAD~1']);
    await repo.write('a.txt', 'A\n');
    const tagged = await callOk(client, 'git_commit', { message: 'upper a', all: true });
    expect([tagged['branch'], tagged['files']]).toEqual(['main', ['a.txt']]);

    await repo.git(['switch', '-q', '--detach', 'HEAD~1']);
    const detached = await callOk(client, 'git_commit', { message: 'on no branch', allowEmpty: true });
    expect([detached['branch'], detached['parents']]).toEqual([null, [await sha('HEAD~1')]]);
  });

  it('status, add, commit, log, show, diff, blame on a real repository', async () => {
    const repo = await createGitRepo({ files: { 'a.txt': 'one\ntwo\n', 'dir/b.txt': 'bee\n' } });
    const client = await startGit(kind, [repo.dir]);

    expect(await callOk(client, 'git_status')).toEqual({
      repo: '.',
      branch: { head: 'main', oid: (await repo.git(['rev-parse', 'HEAD'])).trim() },
      clean: true,
      counts: { staged: 0, unstaged: 0, untracked: 0, conflicted: 0 },
      staged: [],
      unstaged: [],
      untracked: [],
      conflicted: [],
    });

    await repo.write('a.txt', 'one\nTWO\n');
    await repo.write('new file.txt', 'fresh\n');
    await repo.git(['mv', 'dir/b.txt', 'dir/c.txt']);
    const status = await callOk(client, 'git_status');
    expect({
      staged: status['staged'],
      unstaged: status['unstaged'],
      untracked: status['untracked'],
      counts: status['counts'],
      clean: status['clean'],
    }).toEqual({
      staged: [{ path: 'dir/c.txt', status: 'renamed', origPath: 'dir/b.txt' }],
      unstaged: [{ path: 'a.txt', status: 'modified' }],
      untracked: ['new file.txt'],
      counts: { staged: 1, unstaged: 1, untracked: 1, conflicted: 0 },
      clean: false,
    });

    const diff = await callOk(client, 'git_diff');
    expect(diff).toEqual({
      repo: '.',
      mode: 'worktree',
      files: [{ path: 'a.txt', status: 'modified', added: 1, deleted: 1, binary: false }],
      totals: { files: 1, added: 1, deleted: 1 },
      patch: expect.stringContaining('-two\n+TWO\n'),
      patchBytes: Buffer.byteLength(await repo.git(['diff', '--no-color'])),
    });
    expect(diff['patch']).toBe(await repo.git(['diff', '--no-color']));

    const added = await callOk(client, 'git_add', { paths: ['a.txt', 'new file.txt'] });
    expect(added).toEqual({
      repo: '.',
      staged: ['a.txt', 'dir/b.txt', 'dir/c.txt', 'new file.txt'],
      stagedCount: 4,
    });

    const staged = await callOk(client, 'git_diff', { staged: true });
    expect({ mode: staged['mode'], from: staged['from'] }).toEqual({
      mode: 'staged',
      from: { ref: 'HEAD', sha: (await repo.git(['rev-parse', 'HEAD'])).trim() },
    });
    expect(staged['files']).toEqual([
      { path: 'a.txt', status: 'modified', added: 1, deleted: 1, binary: false },
      { path: 'dir/c.txt', oldPath: 'dir/b.txt', status: 'renamed', added: 0, deleted: 0, binary: false },
      { path: 'new file.txt', status: 'added', added: 1, deleted: 0, binary: false },
    ]);

    const committed = await client.callTool({
      name: 'git_commit',
      arguments: { message: 'Rework a, move b\n\nBecause.' },
    });
    const commit = committed.structuredContent;
    const head = (await repo.git(['rev-parse', 'HEAD'])).trim();
    // The text a client shows a model names the whole sha: change.v1 asks for the 40 hex digits.
    expect(committed.content).toEqual([
      { type: 'text', text: `[main ${head}] Rework a, move b\n 4 file(s) changed` },
    ]);
    expect(commit).toEqual({
      repo: '.',
      branch: 'main',
      sha: head,
      parents: [(await repo.git(['rev-parse', 'HEAD~1'])).trim()],
      subject: 'Rework a, move b',
      files: ['a.txt', 'dir/b.txt', 'dir/c.txt', 'new file.txt'],
      filesChanged: 4,
    });
    expect(await repo.git(['log', '-1', '--format=%B'])).toBe('Rework a, move b\n\nBecause.\n\n');

    const empty = await callError(client, 'git_commit', { message: 'nothing' });
    expect(empty.code).toBe('PRECONDITION_FAILED');
    expect(empty.hint).toMatch(/allowEmpty/);

    const log = await callOk(client, 'git_log', { limit: 1 });
    expect(log['commits']).toHaveLength(1);
    expect(log['commits'][0]).toMatchObject({
      sha: head,
      subject: 'Rework a, move b',
      body: 'Because.',
      author: { name: 'Keel Test', email: 'test@keel.invalid' },
    });
    expect(log['ref']).toEqual({ ref: 'HEAD', sha: head });
    const page2 = await callOk(client, 'git_log', { limit: 1, cursor: log['truncated'].nextCursor });
    expect(page2['commits'].map((c: { subject: string }) => c.subject)).toEqual(['initial']);
    expect(page2['truncated']).toBeUndefined();

    const filtered = await callOk(client, 'git_log', { paths: ['dir/b.txt'] });
    expect(filtered['commits'].map((c: { subject: string }) => c.subject)).toEqual([
      'Rework a, move b',
      'initial',
    ]);
    expect((await callOk(client, 'git_log', { grep: 'REWORK' }))['commits']).toHaveLength(1);
    expect((await callOk(client, 'git_log', { author: 'nobody' }))['commits']).toEqual([]);

    const show = await callOk(client, 'git_show', { ref: 'HEAD' });
    expect(show['ref']).toEqual({ ref: 'HEAD', sha: head });
    expect(show['filesTotal']).toBe(3);
    expect(show['patch']).toBe(await repo.git(['show', '--format=', '--no-color', '-M', 'HEAD']));

    const blame = await callOk(client, 'git_blame', { path: 'a.txt' });
    expect(
      blame['lines'].map((line: { line: number; content: string; summary: string }) => [
        line.line,
        line.content,
        line.summary,
      ]),
    ).toEqual([
      [1, 'one', 'initial'],
      [2, 'TWO', 'Rework a, move b'],
    ]);
    const tooFar = await callError(client, 'git_blame', { path: 'a.txt', startLine: 9 });
    expect(tooFar).toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: "'a.txt' has only 2 lines; startLine 9 is past its end",
    });
  });

  it('branches, switch, restore, reset, stash and tags', async () => {
    const repo = await createGitRepo({ files: { 'a.txt': 'a\n' } });
    const client = await startGit(kind, [repo.dir]);
    const first = (await repo.git(['rev-parse', 'HEAD'])).trim();

    expect(await callOk(client, 'git_branch_create', { name: 'feat/x' })).toEqual({
      repo: '.',
      branch: 'feat/x',
      sha: first,
      startPoint: { ref: 'HEAD', sha: first },
      created: true,
    });
    expect((await callOk(client, 'git_branch_create', { name: 'feat/x' }))['created']).toBe(false);
    expect(await callOk(client, 'git_switch', { branch: 'feat/x' })).toEqual({
      repo: '.',
      branch: 'feat/x',
      sha: first,
      previous: 'main',
      created: false,
    });
    const missing = await callError(client, 'git_switch', { branch: 'nope' });
    expect(missing).toMatchObject({ code: 'NOT_FOUND', message: "branch 'nope' does not exist in '.'" });
    expect(missing.hint).toMatch(/^Existing branches: feat\/x, main\./);
    await repo.commit('second', { 'a.txt': 'a2\n' });
    const list = await callOk(client, 'git_branch_list');
    expect(list['current']).toBe('feat/x');
    expect(
      list['branches'].map((b: { name: string; current: boolean; subject: string }) => [
        b.name,
        b.current,
        b.subject,
      ]),
    ).toEqual([
      ['feat/x', true, 'second'],
      ['main', false, 'initial'],
    ]);

    await repo.write('a.txt', 'dirty\n');
    await repo.git(['add', 'a.txt']);
    expect(await callOk(client, 'git_restore', { paths: ['a.txt'], mode: 'unstage' })).toEqual({
      repo: '.',
      mode: 'unstage',
      paths: ['a.txt'],
    });
    expect((await callOk(client, 'git_status'))['unstaged']).toEqual([{ path: 'a.txt', status: 'modified' }]);
    await callOk(client, 'git_restore', { paths: ['a.txt'], mode: 'discard' });
    expect(await readFile(path.join(repo.dir, 'a.txt'), 'utf8')).toBe('a2\n');

    await repo.write('a.txt', 'stash me\n');
    const pushed = await callOk(client, 'git_stash', { action: 'push', message: 'wip' });
    expect(pushed['changed']).toBe(true);
    expect(pushed['entries'].map((e: { ref: string; message: string }) => [e.ref, e.message])).toEqual([
      ['stash@{0}', 'On feat/x: wip'],
    ]);
    expect(await readFile(path.join(repo.dir, 'a.txt'), 'utf8')).toBe('a2\n');
    expect((await callOk(client, 'git_stash', { action: 'pop' }))['entries']).toEqual([]);
    expect(await readFile(path.join(repo.dir, 'a.txt'), 'utf8')).toBe('stash me\n');
    expect((await callError(client, 'git_stash', { action: 'pop' })).code).toBe('NOT_FOUND');

    const reset = await callOk(client, 'git_reset', { target: 'main', mode: 'hard' });
    expect(reset).toEqual({
      repo: '.',
      mode: 'hard',
      branch: 'feat/x',
      previous: (await repo.git(['rev-parse', 'HEAD@{1}'])).trim(),
      target: { ref: 'main', sha: first },
    });
    expect(await readFile(path.join(repo.dir, 'a.txt'), 'utf8')).toBe('a\n');

    expect(await callOk(client, 'git_tag', { action: 'create', name: 'v1', message: 'release one' })).toEqual(
      {
        repo: '.',
        action: 'create',
        created: true,
        tag: { name: 'v1', sha: first, annotated: true, subject: 'release one' },
      },
    );
    await callOk(client, 'git_tag', { action: 'create', name: 'v0' });
    expect((await callOk(client, 'git_tag', { action: 'list' }))['tags']).toEqual([
      { name: 'v1', sha: first, annotated: true, subject: 'release one' },
      { name: 'v0', sha: first, annotated: false, subject: 'initial' },
    ]);
    expect(
      (await callError(client, 'git_tag', { action: 'create', name: 'v1', target: 'feat/x@{1}' })).code,
    ).toBe('ALREADY_EXISTS');
  });

  it('init, clone, fetch, pull, push and worktrees with local repositories inside the roots', async () => {
    const root = await tempDir();
    const client = await startGit(kind, [root], ['--push-remote', 'origin']);
    expect(await callOk(client, 'git_init', { path: 'origin.git-src' })).toEqual({
      path: 'origin.git-src',
      branch: 'main',
      created: true,
    });
    expect((await callOk(client, 'git_init', { path: 'origin.git-src' }))['created']).toBe(false);
    const src = path.join(root, 'origin.git-src');
    await git(src, ['commit', '-q', '--allow-empty', '-m', 'first']);
    await git(root, ['clone', '-q', '--bare', src, 'hub.git']);

    const cloned = await callOk(client, 'git_clone', { url: 'hub.git', path: 'work' });
    expect(cloned).toEqual({
      url: 'hub.git',
      path: 'work',
      branch: 'main',
      head: (await git(src, ['rev-parse', 'HEAD'])).trim(),
    });
    const work = path.join(root, 'work');
    await git(work, ['config', 'user.name', 'Agent']);
    await git(work, ['config', 'user.email', 'agent@keel.invalid']);

    const commit = await callOk(client, 'git_commit', {
      repo: 'work',
      message: 'from agent',
      allowEmpty: true,
    });
    const pushed = await callOk(client, 'git_push', { repo: 'work' });
    expect(pushed).toEqual({
      repo: 'work',
      remote: 'origin',
      urls: [path.join(root, 'hub.git')],
      branch: 'main',
      sha: commit['sha'],
      remoteRef: 'refs/heads/main',
      status: 'fast-forward',
      upstreamSet: false,
    });
    expect((await git(path.join(root, 'hub.git'), ['rev-parse', 'main'])).trim()).toBe(commit['sha']);

    // Someone else pushes; fetch sees it, pull fast-forwards.
    await git(root, ['clone', '-q', 'hub.git', 'other']);
    await git(path.join(root, 'other'), ['commit', '-q', '--allow-empty', '-m', 'from other']);
    await git(path.join(root, 'other'), ['push', '-q', 'origin', 'main']);
    const otherHead = (await git(path.join(root, 'other'), ['rev-parse', 'HEAD'])).trim();
    expect((await callOk(client, 'git_fetch', { repo: 'work' }))['updated']).toEqual([
      { ref: 'refs/remotes/origin/main', from: commit['sha'], to: otherHead },
    ]);
    expect(await callOk(client, 'git_pull', { repo: 'work' })).toEqual({
      repo: 'work',
      remote: 'origin',
      branch: 'main',
      previous: commit['sha'],
      head: otherHead,
      changed: true,
    });

    const shallow = await callOk(client, 'git_clone', {
      url: `file://${path.join(root, 'hub.git')}`,
      path: 'shallow',
      depth: 1,
      branch: 'main',
    });
    expect(shallow).toEqual({
      url: `file://${path.join(root, 'hub.git')}`,
      path: 'shallow',
      branch: 'main',
      head: otherHead,
    });
    expect(await git(path.join(root, 'shallow'), ['rev-list', '--count', 'HEAD'])).toBe('1\n');
    expect((await callError(client, 'git_clone', { url: 'hub.git', path: 'shallow' })).code).toBe(
      'ALREADY_EXISTS',
    );

    const added = await callOk(client, 'git_worktree_add', {
      repo: 'work',
      path: 'work-feat',
      branch: 'feat',
    });
    expect(added).toEqual({
      repo: 'work',
      path: 'work-feat',
      branch: 'feat',
      head: otherHead,
      created: true,
    });
    expect((await callOk(client, 'git_worktree_list', { repo: 'work' }))['worktrees']).toEqual([
      {
        path: 'work',
        head: otherHead,
        branch: 'main',
        detached: false,
        locked: false,
        prunable: false,
        main: true,
      },
      {
        path: 'work-feat',
        head: otherHead,
        branch: 'feat',
        detached: false,
        locked: false,
        prunable: false,
        main: false,
      },
    ]);
    expect((await callOk(client, 'git_status', { repo: 'work-feat' }))['branch']['head']).toBe('feat');
    expect((await callError(client, 'git_worktree_remove', { repo: 'work', path: 'work' })).code).toBe(
      'INVALID_ARGUMENT',
    );
    expect(await callOk(client, 'git_worktree_remove', { repo: 'work', path: 'work-feat' })).toEqual({
      repo: 'work',
      path: 'work-feat',
      branch: 'feat',
    });
  });
});
