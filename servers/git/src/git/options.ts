/**
 * What an operator decides about a git server when starting it. Everything defaults to the safe
 * side: hooks off, the user's global git config ignored, no remote may be pushed to, no force-push,
 * and only the file, https and ssh transports.
 */
export interface GitServerOptions {
  /** Run the repository's hooks (commit, push, checkout hooks). Off by default: hooks are code the repository brings. */
  enableHooks?: boolean;
  /** Read the user's global git config (~/.gitconfig). Off by default: it may define helpers and drivers. */
  useGlobalConfig?: boolean;
  /** Remote names git_push may push to. Empty: every push is refused. */
  pushRemotes?: readonly string[];
  /** Allow `force: 'with-lease'` pushes. */
  allowForcePush?: boolean;
  /** Transports fetch, pull, push and clone may use. `ext` is never accepted. */
  allowProtocols?: readonly GitProtocol[];
  /** Author and committer of commits and tags the server makes; overrides the repository config. */
  identity?: { name: string; email: string };
  /**
   * `user.name` and `user.email` from the user's global git config (see `readGlobalIdentity`; the bin
   * reads them by default), used only where a repository sets no identity of its own. Nothing else
   * of the global config is read unless `useGlobalConfig` is on.
   */
  globalIdentity?: GitIdentity | undefined;
  /** The git program (default `git` on PATH). */
  gitBinary?: string;
}

export interface GitIdentity {
  name?: string;
  email?: string;
}

export const gitProtocols = ['file', 'https', 'http', 'ssh', 'git'] as const;
export type GitProtocol = (typeof gitProtocols)[number];

/** What a server remembers about a repository between calls, valid while its config files are unchanged. */
export interface CachedRepoLocation {
  top: string;
  gitDir: string;
  commonDir: string;
  overrides: readonly string[];
  /** The global identity's variables this repository needs (it sets no user.name or user.email). */
  identityEnv: Readonly<Record<string, string>> | undefined;
  fingerprint: string;
}

export interface ResolvedGitOptions {
  /** Per server instance (never module-level): repository locations and driver overrides by directory. */
  repoCache: Map<string, CachedRepoLocation>;
  enableHooks: boolean;
  useGlobalConfig: boolean;
  pushRemotes: readonly string[];
  allowForcePush: boolean;
  allowProtocols: readonly GitProtocol[];
  identity: { name: string; email: string } | undefined;
  globalIdentity: GitIdentity | undefined;
  gitBinary: string;
}

export function resolveGitOptions(options: GitServerOptions = {}): ResolvedGitOptions {
  return {
    repoCache: new Map(),
    enableHooks: options.enableHooks ?? false,
    useGlobalConfig: options.useGlobalConfig ?? false,
    pushRemotes: [...(options.pushRemotes ?? [])],
    allowForcePush: options.allowForcePush ?? false,
    allowProtocols: [...(options.allowProtocols ?? ['file', 'https', 'ssh'])],
    identity: options.identity,
    // An explicit identity wins, and the whole global config includes the identity anyway.
    globalIdentity:
      options.identity === undefined && options.useGlobalConfig !== true ? options.globalIdentity : undefined,
    gitBinary: options.gitBinary ?? 'git',
  };
}
