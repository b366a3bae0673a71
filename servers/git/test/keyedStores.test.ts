import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFile, chmod, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createGitRepo } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { callOk, startGit, type GitClient } from './helpers.js';

const storeLine = /^store [0-9a-f-]{36}$/;

/** A commit carrying `key` in its trailer that no Keel store recorded: made by hand. */
const byHand = (repo: { git(args: string[]): Promise<string> }, subject: string, key: string) =>
  repo.git(['commit', '-q', '--allow-empty', '-m', `${subject}\n\nKeel-Idempotency-Key: ${key}`]);

describe("git_commit's history search for an earlier commit under its key", () => {
  it('is skipped only while the file names this store alone; another store named, it finds the commit', async () => {
    const repo = await createGitRepo({ files: { 'a.txt': 'a\n' } });
    const marker = path.join(repo.dir, '.git', 'keel-idempotency-stores');
    const server = await startGit('v2', [repo.dir]);
    await callOk(server, 'git_commit', { message: 'one', allowEmpty: true, idempotencyKey: 'k1' });
    const [line = ''] = (await readFile(marker, 'utf8')).split('\n');
    expect(line).toMatch(storeLine);
    expect(await readFile(marker, 'utf8')).toBe(`${line}\n`);

    // What the skip trusts: a key this store never saw was not committed under by any store the
    // file does not name. A commit made by hand behind its back is therefore not looked for.
    await byHand(repo, 'by hand', 'k2');
    const unsearched = await callOk(server, 'git_commit', {
      message: 'by hand',
      allowEmpty: true,
      idempotencyKey: 'k2',
    });
    expect(unsearched['replayed']).toBeUndefined();
    expect(await repo.git(['rev-list', '--count', 'HEAD'])).toBe('4\n');

    // Another store commits here (a replica with its own state): every fresh key is searched for.
    await appendFile(marker, 'store another-replica\n');
    await byHand(repo, 'by hand 3', 'k3');
    const planted = (await repo.git(['rev-parse', 'HEAD'])).trim();
    const found = await callOk(server, 'git_commit', {
      message: 'by hand 3',
      allowEmpty: true,
      idempotencyKey: 'k3',
    });
    expect([found['replayed'], found['sha']]).toEqual([true, planted]);
    expect(await repo.git(['rev-list', '--count', 'HEAD'])).toBe('5\n');
    expect(await readFile(marker, 'utf8')).toBe(`${line}\nstore another-replica\n`);
  });

  it('a second server with its own state names itself and searches, so it finds the first one’s commit', async () => {
    const repo = await createGitRepo({ files: { 'a.txt': 'a\n' } });
    const marker = path.join(repo.dir, '.git', 'keel-idempotency-stores');
    const args = { message: 'shared', allowEmpty: true, idempotencyKey: 'replica-1' };
    const first = await callOk(await startGit('v2', [repo.dir]), 'git_commit', args);
    const second = await startGit('v2', [repo.dir]);
    expect(await callOk(second, 'git_commit', args)).toEqual({ ...first, replayed: true });
    // It named itself before its own first commit, so the first server now searches too.
    await callOk(second, 'git_commit', { message: 'its own', allowEmpty: true, idempotencyKey: 'replica-2' });
    const lines = (await readFile(marker, 'utf8')).trimEnd().split('\n');
    expect(lines).toHaveLength(2);
    for (const named of lines) expect(named).toMatch(storeLine);
    expect(new Set(lines).size).toBe(2);
  });

  it('in a repository with keyed commits from before the file, searches until the TTL has passed since the newest', async () => {
    const repo = await createGitRepo({ files: { 'a.txt': 'a\n' } });
    const marker = path.join(repo.dir, '.git', 'keel-idempotency-stores');
    // Made an hour ago (the fixture's commits are dated 2026-01-01, long past any TTL).
    const hourAgo = new Date(Date.now() - 3_600_000).toISOString();
    execFileSync('git', ['commit', '-q', '--allow-empty', '-m', 'old\n\nKeel-Idempotency-Key: old-1'], {
      cwd: repo.dir,
      env: { ...process.env, GIT_COMMITTER_DATE: hourAgo, GIT_AUTHOR_DATE: hourAgo },
    });
    const oldAt = Number((await repo.git(['log', '-1', '--format=%ct'])).trim()) * 1000;
    expect(Math.abs(oldAt - Date.parse(hourAgo))).toBeLessThan(1000);
    const server = await startGit('v2', [repo.dir]);
    const replayed = await callOk(server, 'git_commit', {
      message: 'old',
      allowEmpty: true,
      idempotencyKey: 'old-1',
    });
    expect(replayed['replayed']).toBe(true);
    await expect(readFile(marker, 'utf8')).rejects.toMatchObject({ code: 'ENOENT' });

    await callOk(server, 'git_commit', { message: 'new', allowEmpty: true, idempotencyKey: 'new-1' });
    const [legacy, store = ''] = (await readFile(marker, 'utf8')).trimEnd().split('\n');
    expect(legacy).toBe(`legacy ${oldAt}`);
    expect(store).toMatch(storeLine);
    // Within the TTL (24 h) of that commit, a key's earlier commit may be one no store recorded.
    await byHand(repo, 'by hand', 'new-2');
    const found = await callOk(server, 'git_commit', {
      message: 'by hand',
      allowEmpty: true,
      idempotencyKey: 'new-2',
    });
    expect(found['replayed']).toBe(true);
    expect(await repo.git(['rev-list', '--count', 'HEAD'])).toBe('4\n');
  });

  it('a commit cut off by its timeout after it landed is found by its retry, though the key was freed', async () => {
    const repo = await createGitRepo({ files: { 'a.txt': 'a\n' } });
    const marker = path.join(repo.dir, '.git', 'keel-idempotency-stores');
    await repo.git(['config', '--unset', 'core.hooksPath']);
    const hook = path.join(repo.dir, '.git', 'hooks', 'post-commit');
    // The commit exists once post-commit runs; the hook then outlasts the call's timeout.
    await writeFile(hook, '#!/bin/sh\nexec sleep 30\n');
    await chmod(hook, 0o755);
    const server = await startGit('v2', [repo.dir], ['--enable-hooks', '--timeout-ms', '1500']);
    const args = { message: 'slow', allowEmpty: true, idempotencyKey: 'cut-off' };
    // A first keyed commit names the store, so the cut-off key is one the search would skip.
    await rm(hook);
    await callOk(server, 'git_commit', { message: 'first', allowEmpty: true, idempotencyKey: 'first' });
    await writeFile(hook, '#!/bin/sh\nexec sleep 30\n');
    await chmod(hook, 0o755);

    const cut = await server.callTool({ name: 'git_commit', arguments: args });
    expect(cut._meta?.['keel/error']).toMatchObject({ code: 'TIMEOUT' });
    expect(await repo.git(['log', '-1', '--format=%s'])).toBe('slow\n');
    const landed = (await repo.git(['rev-parse', 'HEAD'])).trim();
    await rm(hook);

    const retry = await retryWhileRunning(server, args);
    expect(retry.isError).toBeUndefined();
    expect([retry.structuredContent?.['replayed'], retry.structuredContent?.['sha']]).toEqual([true, landed]);
    expect(await repo.git(['rev-list', '--count', 'HEAD'])).toBe('3\n');
    const unsure = `unsure ${createHash('sha256').update('cut-off').digest('hex')}`;
    expect((await readFile(marker, 'utf8')).trimEnd().split('\n').slice(1)).toEqual([unsure]);
  });
});

/** The same call again, while the first (its timeout's kill still settling) holds the key. */
async function retryWhileRunning(client: GitClient, args: Record<string, unknown>) {
  for (let attempt = 0; ; attempt++) {
    const result = await client.callTool({ name: 'git_commit', arguments: args });
    const code = (result._meta?.['keel/error'] as { code?: string } | undefined)?.code;
    if (code !== 'IN_PROGRESS' || attempt === 40) return result;
    await sleep(100);
  }
}
