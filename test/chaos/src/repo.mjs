// The git repositories the tiers work in.
import { execFile as execFileCb } from 'node:child_process';
import { promisify } from 'node:util';

const execFile = promisify(execFileCb);
const author = ['-c', 'user.name=chaos', '-c', 'user.email=chaos@example.invalid'];

/** `git init` in `dir` (branch main) and one commit, `initial`, of everything in it. */
export async function initRepo(dir) {
  const git = (args) => execFile('git', args, { cwd: dir });
  await git(['init', '-q', '-b', 'main']);
  await git([...author, 'add', '-A']);
  await git([...author, 'commit', '-q', '-m', 'initial']);
}
