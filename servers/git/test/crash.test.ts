import { chmod, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createGitRepo, tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { callOk, startGit } from './helpers.js';

async function waitFor<T>(probe: () => Promise<T | undefined>, what: string): Promise<T> {
  for (let i = 0; i < 400; i++) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(25);
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe('git_commit is idempotent across crashes', () => {
  it('a retry with the same key returns the first commit instead of committing again', async () => {
    const repo = await createGitRepo({ files: { 'a.txt': 'a\n' } });
    const client = await startGit('v2', [repo.dir]);
    await repo.write('a.txt', 'b\n');
    await repo.git(['add', 'a.txt']);
    const args = { message: 'change a', idempotencyKey: 'task-1/step-3' };
    const first = await client.callTool({ name: 'git_commit', arguments: args });
    const again = await client.callTool({ name: 'git_commit', arguments: args });
    expect(again.structuredContent).toEqual(first.structuredContent);
    expect(again._meta?.['keel/idempotency']).toMatchObject({ key: 'task-1/step-3', replayed: true });
    expect(await repo.git(['rev-list', '--count', 'HEAD'])).toBe('2\n');
    expect(await repo.git(['log', '-1', '--format=%B'])).toBe(
      'change a\n\nKeel-Idempotency-Key: task-1/step-3\n\n',
    );
  });

  it('a retry after the state was lost finds its commit by the trailer, not "nothing is staged"', async () => {
    const repo = await createGitRepo({ files: { 'a.txt': 'a\n' } });
    await repo.write('a.txt', 'b\n');
    await repo.git(['add', 'a.txt']);
    const args = { message: 'change a', idempotencyKey: 'task-2/step-1' };
    const first = await callOk(await startGit('v2', [repo.dir]), 'git_commit', args);
    // Another replica, or the same server after its state dir was wiped: a fresh store.
    const fresh = await startGit('v2', [repo.dir]);
    const retried = await fresh.callTool({ name: 'git_commit', arguments: args });
    expect(retried.structuredContent).toEqual({ ...first, replayed: true });
    expect(await repo.git(['rev-list', '--count', 'HEAD'])).toBe('2\n');

    const other = await fresh.callTool({
      name: 'git_commit',
      arguments: { message: 'something else', idempotencyKey: 'task-2/step-1' },
    });
    expect(other._meta?.['keel/error']).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' });
  });

  it.each(['v2', 'v1'] as const)(
    'after kill -9 between the commit and the answer, the retry reconciles by the trailer (%s)',
    async (kind) => {
      const repo = await createGitRepo({ files: { 'a.txt': 'a\n' } });
      const stateDir = await tempDir('keel-git-state-');
      const pidFile = path.join(stateDir, 'hook.pid');
      // Hooks on, so a post-commit hook can hold the call after the commit exists and before it answers.
      await repo.git(['config', '--unset', 'core.hooksPath']);
      const hook = path.join(repo.dir, '.git', 'hooks', 'post-commit');
      await writeFile(hook, `#!/bin/sh\necho $$ > '${pidFile}'\nexec sleep 60\n`);
      await chmod(hook, 0o755);
      const before = (await repo.git(['rev-parse', 'HEAD'])).trim();
      await repo.write('a.txt', 'b\n');
      await repo.git(['add', 'a.txt']);

      const flags = ['--enable-hooks', '--lease-ms', '600'];
      const doomed = await startGit(kind, [repo.dir], flags, stateDir);
      const args = {
        message: 'change a\n\nSigned-off-by: Agent <agent@keel.invalid>',
        idempotencyKey: 'run-7:commit',
      };
      const pending = doomed
        .callTool({ name: 'git_commit', arguments: args })
        .catch((error: unknown) => error);
      const committed = await waitFor(async () => {
        const head = (await repo.git(['rev-parse', 'HEAD'])).trim();
        return head !== before ? head : undefined;
      }, 'the commit');
      const hookPid = Number(
        await waitFor(() => readFile(pidFile, 'utf8').catch(() => undefined), 'the hook'),
      );
      process.kill(doomed.pid!, 'SIGKILL');
      process.kill(hookPid, 'SIGKILL');
      expect(await pending).toBeInstanceOf(Error);
      await sleep(800); // past the dead server's lease

      const revived = await startGit(kind, [repo.dir], ['--lease-ms', '600'], stateDir);
      const retry = await revived.callTool({ name: 'git_commit', arguments: args });
      expect(retry.isError).toBeUndefined();
      expect(retry.structuredContent).toEqual({
        repo: '.',
        branch: 'main',
        sha: committed,
        parents: [before],
        subject: 'change a',
        files: ['a.txt'],
        filesChanged: 1,
        idempotencyKey: 'run-7:commit',
      });
      expect(await repo.git(['rev-list', '--count', 'HEAD'])).toBe('2\n');
      // The key joined the existing trailer block, so both are trailers.
      expect(await repo.git(['log', '-1', '--format=%(trailers:only)'])).toBe(
        'Signed-off-by: Agent <agent@keel.invalid>\nKeel-Idempotency-Key: run-7:commit\n\n',
      );
      const third = await callOk(revived, 'git_commit', args);
      expect(third['sha']).toBe(committed);
      expect(await repo.git(['rev-list', '--count', 'HEAD'])).toBe('2\n');
    },
  );
});
