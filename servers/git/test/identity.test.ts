import { access, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { connectStdio, git, tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { binPath, callError, callOk } from './helpers.js';

const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

/** A repository without an identity of its own (the fixture git's variables do not reach the server). */
async function bareIdentityRepo(): Promise<string> {
  const dir = await tempDir('keel-git-ident-');
  await git(dir, ['init', '-q', '-b', 'main']);
  for (const [key, value] of [
    ['gc.auto', '0'],
    ['commit.gpgsign', 'false'],
    ['core.hooksPath', '/dev/null'],
    // Never guess a name from the host: without a configured identity, git must refuse.
    ['user.useConfigOnly', 'true'],
  ])
    await git(dir, ['config', key!, value!]);
  await writeFile(path.join(dir, 'a.txt'), 'a\n');
  return dir;
}

async function startWithHome(dir: string, home: string, flags: string[] = []) {
  const state = await tempDir('keel-git-state-');
  return await connectStdio({
    command: process.execPath,
    args: [binPath, '--root', dir, '--state-dir', state, '--log-level', 'warn', ...flags],
    env: { HOME: home, GIT_CONFIG_GLOBAL: path.join(home, '.gitconfig') },
  });
}

describe("the author identity from the user's global config", () => {
  it('is used where the repository sets none, and nothing else of the global config is read', async () => {
    const home = await tempDir('keel-git-home-');
    const marker = path.join(home, 'pager-ran');
    await writeFile(
      path.join(home, '.gitconfig'),
      `[user]\n\tname = Global Person\n\temail = global@keel.invalid\n[core]\n\tpager = touch ${marker}\n[alias]\n\tlog = !touch ${marker}\n`,
    );
    const dir = await bareIdentityRepo();
    const client = await startWithHome(dir, home);
    await callOk(client, 'git_add', { paths: ['a.txt'] });
    await callOk(client, 'git_commit', { message: 'first' });
    const [first] = (await callOk(client, 'git_log', { limit: 1 }))['commits'];
    expect(first.author).toMatchObject({ name: 'Global Person', email: 'global@keel.invalid' });
    expect(await exists(marker)).toBe(false);

    // The repository's own name wins, as in a terminal; the email still comes from the global config.
    await git(dir, ['config', 'user.name', 'Repo Person']);
    await writeFile(path.join(dir, 'a.txt'), 'b\n');
    await callOk(client, 'git_commit', { message: 'second', all: true });
    const [second] = (await callOk(client, 'git_log', { limit: 1 }))['commits'];
    expect(second.author).toMatchObject({ name: 'Repo Person', email: 'global@keel.invalid' });
  });

  it('is not read with --no-global-identity, and the refusal names every way out', async () => {
    const home = await tempDir('keel-git-home-');
    await writeFile(
      path.join(home, '.gitconfig'),
      '[user]\n\tname = Global Person\n\temail = g@keel.invalid\n',
    );
    const dir = await bareIdentityRepo();
    const client = await startWithHome(dir, home, ['--no-global-identity']);
    await callOk(client, 'git_add', { paths: ['a.txt'] });
    const refused = await callError(client, 'git_commit', { message: 'first' });
    expect(refused.code).toBe('PRECONDITION_FAILED');
    for (const way of ['git config user.name', '~/.gitconfig', '--git-user-name', '--use-global-config'])
      expect(refused.hint).toContain(way);
  });
});
