import { execFileSync } from 'node:child_process';
import type { GitIdentity } from './options.js';

/**
 * `user.name` and `user.email` from the user's global git config (~/.gitconfig, or the file
 * `GIT_CONFIG_GLOBAL` names), and nothing else of it: the server keeps ignoring the helpers and
 * drivers a global config may define. Undefined when neither is set or git cannot be run.
 */
export function readGlobalIdentity(env: NodeJS.ProcessEnv, gitBinary = 'git'): GitIdentity | undefined {
  const childEnv: Record<string, string> = { GIT_CONFIG_NOSYSTEM: '1', LC_ALL: 'C' };
  for (const name of ['PATH', 'HOME', 'XDG_CONFIG_HOME', 'GIT_CONFIG_GLOBAL']) {
    const value = env[name];
    if (value !== undefined) childEnv[name] = value;
  }
  let output: string;
  try {
    output = execFileSync(gitBinary, ['config', '--global', '--get-regexp', '^user\\.(name|email)$'], {
      env: childEnv,
      encoding: 'utf8',
      timeout: 5_000,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch {
    // Exit 1 (no such keys), no global config, or no git at all: no identity to offer.
    return undefined;
  }
  const identity: GitIdentity = {};
  for (const line of output.split('\n')) {
    const space = line.indexOf(' ');
    if (space === -1) continue;
    const key = line.slice(0, space).toLowerCase();
    const value = line.slice(space + 1).trim();
    if (value === '') continue;
    if (key === 'user.name') identity.name = value;
    if (key === 'user.email') identity.email = value;
  }
  return identity.name === undefined && identity.email === undefined ? undefined : identity;
}
