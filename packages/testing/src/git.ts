import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from './tempDir.js';

const execFileAsync = promisify(execFile);

/**
 * The environment fixture git runs with: no system or global config, no prompts, a fixed identity
 * and dates so hashes are stable, and no gc, signing or hooks.
 */
export function gitEnv(home: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env['PATH'],
    HOME: home,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    GIT_AUTHOR_NAME: 'Keel Test',
    GIT_AUTHOR_EMAIL: 'test@keel.invalid',
    GIT_COMMITTER_NAME: 'Keel Test',
    GIT_COMMITTER_EMAIL: 'test@keel.invalid',
    GIT_AUTHOR_DATE: '2026-01-01T00:00:00Z',
    GIT_COMMITTER_DATE: '2026-01-01T00:00:00Z',
  };
}

/** Runs git in `cwd` with the fixture environment; returns stdout (throws with stderr on failure). */
export async function git(cwd: string, args: readonly string[]): Promise<string> {
  const { stdout } = await execFileAsync('git', [...args], {
    cwd,
    env: gitEnv(cwd),
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

export interface GitRepo {
  dir: string;
  git(args: readonly string[]): Promise<string>;
  write(file: string, content: string): Promise<void>;
  commit(message: string, files?: Record<string, string>): Promise<string>;
}

/** A real git repository in a temp dir, on branch main, with gc, signing and hooks off. */
export async function createGitRepo(
  options: { files?: Record<string, string>; dir?: string } = {},
): Promise<GitRepo> {
  const dir = options.dir ?? (await tempDir('keel-git-'));
  await git(dir, ['init', '-q', '-b', 'main']);
  for (const [key, value] of Object.entries({
    'gc.auto': '0',
    'commit.gpgsign': 'false',
    'tag.gpgsign': 'false',
    'core.hooksPath': '/dev/null',
    'user.name': 'Keel Test',
    'user.email': 'test@keel.invalid',
  })) {
    await git(dir, ['config', key, value]);
  }
  const repo: GitRepo = {
    dir,
    git: (args) => git(dir, args),
    async write(file, content) {
      const full = path.join(dir, file);
      await mkdir(path.dirname(full), { recursive: true });
      await writeFile(full, content);
    },
    async commit(message, files = {}) {
      for (const [file, content] of Object.entries(files)) await repo.write(file, content);
      await git(dir, ['add', '-A']);
      await git(dir, ['commit', '-q', '--allow-empty', '-m', message]);
      return (await git(dir, ['rev-parse', 'HEAD'])).trim();
    },
  };
  if (options.files !== undefined) await repo.commit('initial', options.files);
  return repo;
}
