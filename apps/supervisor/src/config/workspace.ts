import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';

/**
 * What is wrong with a directory as a task's workspace, one sentence each (empty when nothing):
 * it must exist, and be a git repository for the git server, the task's recorded starting state
 * and `keel replay`.
 */
export function workspaceProblems(dir: string): string[] {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(dir).isDirectory();
  } catch {
    return [`the workspace ${dir} does not exist`];
  }
  if (!isDirectory) return [`the workspace ${dir} is not a directory`];
  try {
    const inside = execFileSync('git', ['rev-parse', '--is-inside-work-tree'], {
      cwd: dir,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
    if (inside === 'true') return [];
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      return ['git is not installed: the git server, the recorded starting state and keel replay need it'];
  }
  return [
    `the workspace ${dir} is not a git repository: the git server's tools, the task's recorded starting state and keel replay need one (git init, then commit what is there)`,
  ];
}
