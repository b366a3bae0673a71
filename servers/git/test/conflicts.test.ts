import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createGitRepo } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { callError, callOk, startGit } from './helpers.js';

describe('a repository in the middle of a conflicted merge', () => {
  it('status lists the conflict, diff shows the combined patch, commit refuses while unresolved', async () => {
    const repo = await createGitRepo({ files: { 'a.txt': 'base\n', 'b.txt': 'b\n' } });
    await repo.git(['switch', '-q', '-c', 'other']);
    await repo.commit('theirs', { 'a.txt': 'theirs\n' });
    await repo.git(['switch', '-q', 'main']);
    await repo.commit('ours', { 'a.txt': 'ours\n', 'b.txt': 'b2\n' });
    await repo.git(['merge', '-q', 'other']).catch(() => undefined);
    const client = await startGit('v2', [repo.dir]);

    const status = await callOk(client, 'git_status');
    expect({ conflicted: status['conflicted'], counts: status['counts'] }).toEqual({
      conflicted: [{ path: 'a.txt', status: 'UU' }],
      counts: { staged: 0, unstaged: 0, untracked: 0, conflicted: 1 },
    });
    const diff = await callOk(client, 'git_diff');
    expect(diff['files']).toEqual([
      { path: 'a.txt', status: 'unmerged', added: null, deleted: null, binary: false },
    ]);
    expect(diff['patch']).toMatch(/^diff --cc a\.txt\n/);
    expect(diff['patch']).toBe(await repo.git(['-c', 'core.quotePath=false', 'diff', '--no-color', '-M']));

    const commit = await callError(client, 'git_commit', { message: 'merge' });
    expect(commit.code).toBe('CONFLICT');
  });

  it('rejects a tampered cursor and one issued for other arguments', async () => {
    const repo = await createGitRepo({ files: { 'a.txt': 'a\n' } });
    for (let i = 0; i < 3; i++) await repo.commit(`c${i}`);
    const client = await startGit('v1', [repo.dir]);
    const page = await callOk(client, 'git_log', { limit: 1 });
    const cursor = page['truncated'].nextCursor as string;
    // One character in the middle changed (its six bits all count, unlike a padded last character).
    const at = Math.floor(cursor.length / 2);
    const tampered = `${cursor.slice(0, at)}${cursor[at] === 'A' ? 'B' : 'A'}${cursor.slice(at + 1)}`;
    expect((await callError(client, 'git_log', { limit: 1, cursor: tampered })).code).toBe(
      'INVALID_ARGUMENT',
    );
    expect((await callError(client, 'git_log', { limit: 1, cursor, author: 'x' })).code).toBe(
      'INVALID_ARGUMENT',
    );
    // A cursor survives a change of page size: the budget is not part of its binding.
    expect(
      (await callOk(client, 'git_log', { limit: 5, cursor }))['commits'].map(
        (c: { subject: string }) => c.subject,
      ),
    ).toEqual(['c1', 'c0', 'initial']);
  });

  it('answers bad input with structured errors and hints', async () => {
    const repo = await createGitRepo({ files: { 'a.txt': 'a\n' } });
    const client = await startGit('v2', [repo.dir]);
    // `to` chooses the two-commit mode of the schema, where `from` is required.
    expect(await callError(client, 'git_diff', { to: 'HEAD' })).toEqual({
      code: 'INVALID_ARGUMENT',
      message:
        'invalid arguments for git_diff: ✖ Invalid input: expected string, received undefined\n  → at from',
      hint: "Fix from to match the tool's input schema (tools/list shows it) and call again.",
      retryable: false,
      details: {
        issues: [{ path: ['from'], message: 'Invalid input: expected string, received undefined' }],
      },
    });
    expect(await callError(client, 'git_log', { ref: 'nope' })).toMatchObject({
      code: 'NOT_FOUND',
      message: "ref 'nope' does not name a commit in '.'",
      hint: 'Existing branches: main.',
    });
    expect(await callError(client, 'git_branch_create', { name: 'a..b' })).toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: "'a..b' is not a valid branch name",
    });
    expect(await callError(client, 'git_add', {})).toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: 'nothing to stage: no paths and all is false',
    });
    expect(await callError(client, 'git_blame', { path: 'a.txt', startLine: 5, endLine: 2 })).toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    expect(await callError(client, 'git_fetch', { remote: 'origin' })).toMatchObject({
      code: 'NOT_FOUND',
      message: "remote 'origin' is not configured in '.'",
      hint: 'Configured remotes: (none).',
    });
    expect(await callError(client, 'git_status', { repo: 'missing-dir' })).toMatchObject({
      code: 'NOT_FOUND',
    });
    expect(await callError(client, 'git_status', { limit: -1 })).toMatchObject({
      code: 'INVALID_ARGUMENT',
      details: { issues: [{ path: ['limit'] }] },
    });

    // Another git holding the index lock is a retryable condition, not a failure of the call.
    await writeFile(path.join(repo.dir, '.git', 'index.lock'), '');
    await repo.write('a.txt', 'changed\n');
    expect(await callError(client, 'git_add', { paths: ['a.txt'] })).toMatchObject({
      code: 'UNAVAILABLE',
      retryable: true,
    });
  });
});

describe('a lock file left by a killed git', () => {
  async function stagedRepo() {
    const repo = await createGitRepo({ files: { 'a.txt': 'a\n' } });
    await repo.write('b.txt', 'b\n');
    await repo.git(['add', 'b.txt']);
    const lock = path.join(repo.dir, '.git', 'index.lock');
    await writeFile(lock, '');
    // Written a minute ago: past the moment a live lock may sit closed before its rename.
    const past = new Date(Date.now() - 60_000);
    await utimes(lock, past, past);
    return { repo, lock };
  }

  it('is removed when nothing holds it open, and the write goes through', async () => {
    const { repo, lock } = await stagedRepo();
    const client = await startGit('v2', [repo.dir]);
    const commit = await callOk(client, 'git_commit', { message: 'Add b' });
    expect(commit['subject']).toBe('Add b');
    expect((await repo.git(['log', '--format=%s'])).trim().split('\n')).toEqual(['Add b', 'initial']);
    await expect(stat(lock)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('is left alone while a process holds it open: the write is refused as retryable', async () => {
    const { repo, lock } = await stagedRepo();
    const holder = spawn(
      process.execPath,
      [
        '-e',
        `require('fs').openSync(${JSON.stringify(lock)}, 'r'); process.stdout.write('open'); setInterval(() => {}, 1000)`,
      ],
      { stdio: ['ignore', 'pipe', 'ignore'] },
    );
    try {
      await once(holder.stdout!, 'data');
      const client = await startGit('v2', [repo.dir]);
      const refused = await callError(client, 'git_commit', { message: 'Add b' });
      expect([refused.code, refused.retryable]).toEqual(['UNAVAILABLE', true]);
      expect((await stat(lock)).isFile()).toBe(true);
    } finally {
      holder.kill('SIGKILL');
      await once(holder, 'exit');
    }
  });
});
