import { chmod, mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createGitRepo, git, tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { callError, callOk, startGit } from './helpers.js';

/** A script that records that it ran; the tests assert it never does. */
async function trap(dir: string, marker: string): Promise<string> {
  const script = path.join(dir, 'trap.sh');
  await writeFile(script, `#!/bin/sh\necho "$0 $*" >> '${marker}'\ncat\n`);
  await chmod(script, 0o755);
  return script;
}

describe('repository configuration cannot run anything', () => {
  it.each(['v2', 'v1'] as const)(
    'fsmonitor, filter, diff, textconv, pager, hooks and upload-pack programs never run (%s)',
    async (kind) => {
      const outside = await tempDir('keel-outside-');
      const marker = path.join(outside, 'ran');
      const script = await trap(outside, marker);
      const root = await tempDir();
      await mkdir(path.join(root, 'repo'));
      const repo = await createGitRepo({ dir: path.join(root, 'repo') });
      await repo.commit('initial', {
        'a.txt': 'a\n',
        'img.bin': 'bin\n',
        '.gitattributes': '*.txt filter=evil diff=evil\n*.bin diff=evil\n',
      });
      await git(root, ['clone', '-q', '--bare', repo.dir, 'hub.git']);
      for (const [key, value] of [
        ['core.fsmonitor', script],
        ['core.hooksPath', path.join(repo.dir, '.git', 'hooks')],
        ['core.pager', script],
        ['core.sshCommand', script],
        ['core.editor', script],
        ['diff.external', script],
        ['filter.evil.clean', script],
        ['filter.evil.smudge', script],
        ['filter.evil.process', script],
        ['filter.evil.required', 'true'],
        ['diff.evil.textconv', script],
        ['diff.evil.command', script],
        ['credential.helper', `!${script}`],
        ['remote.origin.url', path.join(root, 'hub.git')],
        ['remote.origin.fetch', '+refs/heads/*:refs/remotes/origin/*'],
        ['remote.origin.uploadpack', script],
        ['remote.origin.receivepack', script],
      ] as const) {
        await repo.git(['config', key, value]);
      }
      await mkdir(path.join(repo.dir, '.git', 'hooks'), { recursive: true });
      for (const hook of [
        'pre-commit',
        'commit-msg',
        'post-commit',
        'post-checkout',
        'pre-push',
        'post-merge',
        'reference-transaction',
      ]) {
        await writeFile(
          path.join(repo.dir, '.git', 'hooks', hook),
          `#!/bin/sh\necho ${hook} >> '${marker}'\n`,
        );
        await chmod(path.join(repo.dir, '.git', 'hooks', hook), 0o755);
      }
      const client = await startGit(kind, [root], ['--push-remote', 'origin', '--timeout-ms', '8000']);
      const at = { repo: 'repo' };
      await repo.write('a.txt', 'a changed\n');
      await repo.write('img.bin', 'bin changed\n');

      expect((await callOk(client, 'git_status', at))['unstaged']).toEqual([
        { path: 'a.txt', status: 'modified' },
        { path: 'img.bin', status: 'modified' },
      ]);
      const diff = await callOk(client, 'git_diff', at);
      expect(diff['patch']).toContain('-a\n+a changed\n');
      await callOk(client, 'git_add', { ...at, all: true });
      await callOk(client, 'git_diff', { ...at, staged: true });
      await callOk(client, 'git_commit', { ...at, message: 'change' });
      await callOk(client, 'git_show', at);
      await callOk(client, 'git_log', at);
      await callOk(client, 'git_blame', { ...at, path: 'a.txt' });
      await callOk(client, 'git_switch', { ...at, branch: 'side', create: true });
      await repo.write('a.txt', 'dirty\n');
      await callOk(client, 'git_stash', { ...at, action: 'push' });
      await callOk(client, 'git_stash', { ...at, action: 'pop' });
      await callOk(client, 'git_restore', { ...at, paths: ['a.txt'], mode: 'discard' });
      await callOk(client, 'git_fetch', at);
      const pushed = await callOk(client, 'git_push', { ...at, branch: 'side' });
      await callOk(client, 'git_reset', { ...at, target: 'HEAD~1', mode: 'hard' });
      await callOk(client, 'git_worktree_add', { ...at, path: 'wt', branch: 'wt' });

      expect(existsSync(marker)).toBe(false);
      // The bare hub received the push through the real receive-pack, not the configured script.
      expect((await git(path.join(root, 'hub.git'), ['rev-parse', 'side'])).trim()).toBe(pushed['sha']);
    },
  );

  it('a driver added to the config between two calls is disarmed too (the remembered location is re-read)', async () => {
    const outside = await tempDir('keel-outside-');
    const marker = path.join(outside, 'ran');
    const script = await trap(outside, marker);
    const repo = await createGitRepo({ files: { 'a.txt': 'a\n', '.gitattributes': '*.txt filter=late\n' } });
    const client = await startGit('v2', [repo.dir]);
    expect((await callOk(client, 'git_status'))['clean']).toBe(true);
    await repo.git(['config', 'filter.late.clean', script]);
    await repo.write('a.txt', 'b\n');
    await callOk(client, 'git_add', { paths: ['a.txt'] });
    expect(existsSync(marker)).toBe(false);
    expect(await repo.git(['show', ':a.txt'])).toBe('b\n');
  });

  it('a filter driver with a name the server cannot override is refused, not run', async () => {
    const repo = await createGitRepo({ files: { 'a.txt': 'a\n' } });
    await repo.git(['config', 'filter.a=b.clean', 'touch pwned']);
    const client = await startGit('v2', [repo.dir]);
    const error = await callError(client, 'git_status');
    expect(error).toMatchObject({
      code: 'PERMISSION_DENIED',
      message: "the repository config defines filter 'a=b' with a name the server cannot neutralise",
    });
  });
});

describe('user values are never read as options', () => {
  it('option-looking refs, names, urls and paths are refused or taken literally', async () => {
    const repo = await createGitRepo({ files: { 'a.txt': 'a\n' } });
    const client = await startGit('v2', [repo.dir]);
    const pwned = path.join(repo.dir, 'pwned');
    for (const [tool, args, field] of [
      ['git_diff', { from: `--output=${pwned}` }, 'from'],
      ['git_log', { ref: `--output=${pwned}` }, 'ref'],
      ['git_show', { ref: '--output=x' }, 'ref'],
      ['git_blame', { path: 'a.txt', ref: '-L1,1' }, 'ref'],
      ['git_reset', { target: '--hard' }, 'target'],
      ['git_branch_create', { name: '-D' }, 'branch'],
      ['git_branch_create', { name: 'ok', startPoint: '--orphan' }, 'startPoint'],
      ['git_switch', { branch: '--orphan=x' }, 'branch'],
      ['git_tag', { action: 'create', name: '--delete' }, 'tag'],
      ['git_tag', { action: 'create', name: 'v1', target: '--points-at' }, 'target'],
      ['git_worktree_add', { path: 'wt', branch: '-f' }, 'branch'],
    ] as const) {
      const error = await callError(client, tool, args);
      expect({ tool, code: error.code, message: error.message }).toEqual({
        tool,
        code: 'INVALID_ARGUMENT',
        message: expect.stringMatching(
          new RegExp(`^(${field} '-.*' starts with '-', which git would read as an option)$`),
        ) as unknown as string,
      });
    }
    expect((await callError(client, 'git_clone', { url: '--upload-pack=touch pwned', path: 'c' })).code).toBe(
      'INVALID_ARGUMENT',
    );
    expect(
      (await callError(client, 'git_clone', { url: '.', path: 'c', branch: '--upload-pack=touch pwned' }))
        .code,
    ).toBe('INVALID_ARGUMENT');
    expect((await callError(client, 'git_init', { path: 'i', initialBranch: '--bare' })).code).toBe(
      'INVALID_ARGUMENT',
    );
    expect((await callError(client, 'git_push', { remote: '--receive-pack=x' })).code).toBe(
      'PERMISSION_DENIED',
    );
    expect((await callError(client, 'git_fetch', { remote: '--upload-pack=touch pwned' })).code).toBe(
      'INVALID_ARGUMENT',
    );
    expect((await callError(client, 'git_pull', { remote: '--upload-pack=touch pwned' })).code).toBe(
      'INVALID_ARGUMENT',
    );
    await repo.git(['remote', 'add', 'origin', repo.dir]);
    expect((await callError(client, 'git_pull', { branch: '--upload-pack=touch pwned' })).code).toBe(
      'INVALID_ARGUMENT',
    );
    const pusher = await startGit('v2', [repo.dir], ['--push-remote', 'origin']);
    expect((await callError(pusher, 'git_push', { branch: '--force' })).code).toBe('INVALID_ARGUMENT');
    // Dates are values glued to --since=/--until=, so git reads them as (odd) dates, never as options.
    // Which commits such a date admits depends on digits in the temp path, so only success is checked;
    // the pwned file is checked below.
    expect(
      Array.isArray(
        (await callOk(client, 'git_log', { since: `--output=${pwned}`, until: '--all' }))['commits'],
      ),
    ).toBe(true);

    // Filters are values glued to their option, so they stay patterns; messages are data.
    expect(
      (await callOk(client, 'git_log', { author: `--output=${pwned}`, grep: '--all' }))['commits'],
    ).toEqual([]);
    const commit = await callOk(client, 'git_commit', { message: '--amend', allowEmpty: true });
    expect(await repo.git(['log', '-1', '--format=%s'])).toBe('--amend\n');
    expect(commit['subject']).toBe('--amend');

    // A file whose name looks like an option is a path after `--`.
    await repo.write('--force', 'x\n');
    expect((await callOk(client, 'git_add', { paths: ['--force'] }))['staged']).toEqual(['--force']);
    await callOk(client, 'git_stash', { action: 'push', message: '--help', includeUntracked: true });
    expect(existsSync(pwned)).toBe(false);
    expect(await readdir(repo.dir)).toEqual(expect.not.arrayContaining(['pwned', 'x']));
  });

  it('refs named like options planted in .git/refs are listed but never used as options', async () => {
    const repo = await createGitRepo({ files: { 'a.txt': 'a\n' } });
    const head = (await repo.git(['rev-parse', 'HEAD'])).trim();
    await writeFile(path.join(repo.dir, '.git', 'refs', 'heads', '--output=pwned'), `${head}\n`);
    await writeFile(path.join(repo.dir, '.git', 'refs', 'tags', '-p'), `${head}\n`);
    const client = await startGit('v1', [repo.dir]);
    const names = (await callOk(client, 'git_branch_list'))['branches'].map(
      (branch: { name: string }) => branch.name,
    );
    expect(names).toEqual(['--output=pwned', 'main']);
    expect(
      (await callOk(client, 'git_tag', { action: 'list' }))['tags'].map((tag: { name: string }) => tag.name),
    ).toEqual(['-p']);
    expect((await callError(client, 'git_log', { ref: '--output=pwned' })).code).toBe('INVALID_ARGUMENT');
    expect((await callError(client, 'git_switch', { branch: '--output=pwned' })).code).toBe(
      'INVALID_ARGUMENT',
    );
    expect((await callError(client, 'git_diff', { from: '-p' })).code).toBe('INVALID_ARGUMENT');
    expect(existsSync(path.join(repo.dir, 'pwned'))).toBe(false);
  });
});

describe('the repository must be inside the roots', () => {
  it('refuses repositories reached by .., by symlink, by a .git file or core.worktree outside, and never discovers a repository above a root', async () => {
    const outsideRepo = await createGitRepo({ files: { 'secret.txt': 'secret\n' } });
    const root = await tempDir();
    await symlink(outsideRepo.dir, path.join(root, 'link'));
    await mkdir(path.join(root, 'gitfile'));
    await writeFile(path.join(root, 'gitfile', '.git'), `gitdir: ${path.join(outsideRepo.dir, '.git')}\n`);
    const inner = await createGitRepo({
      dir: await mkdir(path.join(root, 'inner'), { recursive: true }).then(() => path.join(root, 'inner')),
    });
    await inner.git(['config', 'core.worktree', outsideRepo.dir]);
    // A root inside a repository: discovery must stop at the root.
    const nested = path.join(outsideRepo.dir, 'sub');
    await mkdir(nested);

    const client = await startGit('v2', [root]);
    expect((await callError(client, 'git_status', { repo: '..' })).code).toBe('OUTSIDE_ROOTS');
    expect((await callError(client, 'git_status', { repo: outsideRepo.dir })).code).toBe('OUTSIDE_ROOTS');
    expect((await callError(client, 'git_status', { repo: 'link' })).code).toBe('OUTSIDE_ROOTS');
    const gitfile = await callError(client, 'git_log', { repo: 'gitfile' });
    expect(gitfile.code).toBe('OUTSIDE_ROOTS');
    expect(gitfile.message).toBe(
      `the repository at 'gitfile' uses '${path.join(outsideRepo.dir, '.git')}', which is outside the roots`,
    );
    expect((await callError(client, 'git_status', { repo: 'inner' })).code).toBe('OUTSIDE_ROOTS');
    expect((await callError(client, 'git_init', { path: '../escape' })).code).toBe('OUTSIDE_ROOTS');
    expect((await callError(client, 'git_clone', { url: outsideRepo.dir, path: 'stolen' })).code).toBe(
      'OUTSIDE_ROOTS',
    );

    const nestedClient = await startGit('v2', [nested]);
    expect((await callError(nestedClient, 'git_status')).code).toBe('NOT_FOUND');
  });

  it('refuses paths that leave the repository', async () => {
    const repo = await createGitRepo({ files: { 'a.txt': 'a\n' } });
    const client = await startGit('v2', [repo.dir]);
    expect(await callError(client, 'git_add', { paths: ['../x'] })).toMatchObject({
      code: 'OUTSIDE_ROOTS',
      message: "paths entry '../x' is outside the repository '.'",
    });
    expect((await callError(client, 'git_diff', { paths: ['/etc/passwd'] })).code).toBe('OUTSIDE_ROOTS');
    expect((await callError(client, 'git_blame', { path: '.git/config' })).code).toBe('INVALID_ARGUMENT');
  });
});

describe('remotes', () => {
  it('push needs an allowlisted remote, force needs a flag, and remotes must use allowed transports inside the roots', async () => {
    const root = await tempDir();
    const outside = await tempDir('keel-outside-');
    const repo = await createGitRepo({
      dir: await mkdir(path.join(root, 'r')).then(() => path.join(root, 'r')),
    });
    await repo.commit('one', { 'a.txt': 'a\n' });
    await git(root, ['clone', '-q', '--bare', repo.dir, 'hub.git']);
    await git(outside, ['clone', '-q', '--bare', repo.dir, 'far.git']);
    await repo.git(['remote', 'add', 'origin', path.join(root, 'hub.git')]);
    await repo.git(['remote', 'add', 'far', path.join(outside, 'far.git')]);
    await repo.git(['remote', 'add', 'evil', 'ext::sh -c touch% pwned']);

    const strict = await startGit('v2', [root]);
    expect(await callError(strict, 'git_push', { repo: 'r' })).toMatchObject({
      code: 'PERMISSION_DENIED',
      message: "pushing to remote 'origin' is not allowed by this server",
      hint: 'No remote is allowed: the operator must start the server with --push-remote NAME.',
    });
    const client = await startGit(
      'v2',
      [root],
      ['--push-remote', 'origin', '--push-remote', 'far', '--push-remote', 'evil'],
    );
    expect((await callError(client, 'git_push', { repo: 'r', force: 'with-lease' })).code).toBe(
      'PERMISSION_DENIED',
    );
    expect((await callError(client, 'git_push', { repo: 'r', remote: 'far' })).code).toBe('OUTSIDE_ROOTS');
    expect((await callError(client, 'git_fetch', { repo: 'r', remote: 'far' })).code).toBe('OUTSIDE_ROOTS');
    expect((await callError(client, 'git_fetch', { repo: 'r', remote: 'evil' })).code).toBe(
      'PERMISSION_DENIED',
    );
    expect((await callError(client, 'git_push', { repo: 'r', remote: 'evil' })).code).toBe(
      'PERMISSION_DENIED',
    );
    expect((await callError(client, 'git_clone', { url: 'ext::sh -c touch% pwned', path: 'c' })).code).toBe(
      'PERMISSION_DENIED',
    );
    expect((await callError(client, 'git_fetch', { repo: 'r', remote: 'nope' })).hint).toBe(
      'Configured remotes: evil, far, origin.',
    );
    expect(existsSync(path.join(root, 'r', 'pwned'))).toBe(false);

    // A rejected non-fast-forward push is a conflict, and with the force flag a lease push goes through.
    await repo.git(['push', '-q', 'origin', 'main']);
    await repo.git(['reset', '-q', '--hard', 'HEAD']);
    await repo.commit('two', { 'b.txt': 'b\n' });
    await repo.git(['push', '-q', 'origin', 'main']);
    await repo.git(['reset', '-q', '--hard', 'HEAD~1']);
    await repo.commit('diverged', { 'c.txt': 'c\n' });
    expect((await callError(client, 'git_push', { repo: 'r' })).code).toBe('CONFLICT');
    const forcing = await startGit('v2', [root], ['--push-remote', 'origin', '--allow-force-push']);
    await repo.git(['fetch', '-q', 'origin']);
    expect((await callOk(forcing, 'git_push', { repo: 'r', force: 'with-lease' }))['status']).toBe('forced');
  });
});

describe('a hostile repository cannot stall the server', () => {
  it('a FIFO planted as the branch ref is read as git reads it, without blocking the server', async () => {
    const hostile = await createGitRepo({ files: { 'a.txt': 'a\n' } });
    const other = await createGitRepo({ files: { 'b.txt': 'b\n' } });
    const ref = path.join(hostile.dir, '.git', 'refs', 'heads', 'main');
    await rm(ref);
    execFileSync('mkfifo', [ref]);
    const client = await startGit('v2', [hostile.dir, other.dir]);
    // The server reads HEAD itself; a blocking open of the FIFO would stall every call. Git treats
    // a ref that is not a regular file as missing, so the branch reads as one without commits.
    const [log, status] = await Promise.all([
      callOk(client, 'git_log', { repo: hostile.dir }),
      callOk(client, 'git_status', { repo: other.dir }),
    ]);
    expect(log['ref']).toEqual({ ref: 'HEAD', sha: null });
    expect(log['commits']).toEqual([]);
    expect(status['clean']).toBe(true);
  });
});
