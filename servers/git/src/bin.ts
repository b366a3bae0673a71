#!/usr/bin/env node
import { collect, collectChoice, packageVersion, runServerCli } from '@keel/kit/cli';
import { createGitServerTools, gitProtocols, readGlobalIdentity, type GitProtocol } from './index.js';

interface GitFlags {
  enableHooks: boolean;
  useGlobalConfig: boolean;
  globalIdentity: boolean;
  pushRemote?: string[];
  allowForcePush: boolean;
  allowProtocol?: GitProtocol[];
  gitUserName?: string;
  gitUserEmail?: string;
}

const code = await runServerCli<GitFlags>({
  name: 'keel-git',
  bin: 'keel-git',
  version: packageVersion(new URL('../package.json', import.meta.url)),
  description:
    'The Keel git MCP server: bounded, structured git for coding agents that cannot be turned against its host.',
  argv: process.argv,
  env: process.env,
  configure: (program) => {
    program
      .option('--enable-hooks', "run the repositories' own hooks", false)
      .option('--use-global-config', "read the user's whole global git config (~/.gitconfig)", false)
      .option(
        '--no-global-identity',
        "do not take user.name and user.email from the user's global git config (read by default, nothing else of it is)",
      )
      .option(
        '--push-remote <name>',
        'a remote name git_push may push to (repeatable; without it every push is refused)',
        collect,
      )
      .option('--allow-force-push', 'allow git_push with force "with-lease"', false)
      .option(
        '--allow-protocol <protocol>',
        `a transport fetch/pull/push/clone may use (repeatable; one of ${gitProtocols.join(', ')}; without the flag: file, https, ssh; ext is never allowed)`,
        collectChoice('--allow-protocol', gitProtocols, ' (ext is never allowed)'),
      )
      .option(
        '--git-user-name <name>',
        'author and committer name for commits and tags the server makes (with --git-user-email; overrides the repository config)',
      )
      .option('--git-user-email <email>', 'author and committer email (with --git-user-name)');
  },
  helpText: '\nExample:\n  keel-git --root . --push-remote origin\n',
  build: ({ options, env }) =>
    createGitServerTools({
      ...(options.globalIdentity && !options.useGlobalConfig && options.gitUserName === undefined
        ? { globalIdentity: readGlobalIdentity(env) }
        : {}),
      enableHooks: options.enableHooks,
      useGlobalConfig: options.useGlobalConfig,
      pushRemotes: options.pushRemote ?? [],
      allowForcePush: options.allowForcePush,
      ...(options.allowProtocol === undefined ? {} : { allowProtocols: options.allowProtocol }),
      ...(options.gitUserName !== undefined && options.gitUserEmail !== undefined
        ? { identity: { name: options.gitUserName, email: options.gitUserEmail } }
        : {}),
    }),
});
process.exit(code);
