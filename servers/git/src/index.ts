import {
  createServer,
  packageVersion,
  toolSet,
  type KeelServer,
  type PathJail,
  type ToolSet,
} from '@keel/kit';
import { withHooksMayRun } from './git/effect.js';
import { resolveGitOptions, type GitServerOptions } from './git/options.js';
import type { Repo } from './git/repo.js';
import { gitPrepare } from './git/withRepo.js';
import { gitAddTool } from './tools/gitAdd.js';
import { gitBlameTool } from './tools/gitBlame.js';
import { gitBranchCreateTool } from './tools/gitBranchCreate.js';
import { gitBranchListTool } from './tools/gitBranchList.js';
import { gitCloneTool } from './tools/gitClone.js';
import { gitCommitTool } from './tools/gitCommit.js';
import { gitDiffTool } from './tools/gitDiff.js';
import { gitFetchTool } from './tools/gitFetch.js';
import { gitInitTool } from './tools/gitInit.js';
import { gitLogTool } from './tools/gitLog.js';
import { gitPullTool } from './tools/gitPull.js';
import { gitPushTool } from './tools/gitPush.js';
import { gitResetTool } from './tools/gitReset.js';
import { gitRestoreTool } from './tools/gitRestore.js';
import { gitShowTool } from './tools/gitShow.js';
import { gitStashTool } from './tools/gitStash.js';
import { gitStatusTool } from './tools/gitStatus.js';
import { gitSwitchTool } from './tools/gitSwitch.js';
import { gitTagTool } from './tools/gitTag.js';
import { gitWorktreeAddTool } from './tools/gitWorktreeAdd.js';
import { gitWorktreeListTool } from './tools/gitWorktreeList.js';
import { gitWorktreeRemoveTool } from './tools/gitWorktreeRemove.js';

export { gitProtocols, resolveGitOptions } from './git/options.js';
export type { GitIdentity, GitProtocol, GitServerOptions, ResolvedGitOptions } from './git/options.js';
export { readGlobalIdentity } from './git/identity.js';
export type { Repo } from './git/repo.js';

/**
 * The git tools, built for one set of operator options, with the prepare step that opens each call's
 * repository. Each call runs the real `git` CLI with argument arrays, a hardened config and
 * environment, and the repository checked against the jail.
 */
export function createGitServerTools(options: GitServerOptions = {}): ToolSet<Repo> {
  const resolved = resolveGitOptions(options);
  const tools = [
    gitStatusTool(),
    gitDiffTool(),
    gitLogTool(),
    gitShowTool(),
    gitBlameTool(),
    gitBranchListTool(),
    gitBranchCreateTool(resolved),
    gitSwitchTool(),
    gitAddTool(),
    gitRestoreTool(),
    gitCommitTool(resolved),
    gitResetTool(),
    gitStashTool(),
    gitTagTool(resolved),
    gitFetchTool(resolved),
    gitPullTool(resolved),
    gitPushTool(resolved),
    gitWorktreeAddTool(resolved),
    gitWorktreeListTool(),
    gitWorktreeRemoveTool(),
    gitInitTool(resolved),
    gitCloneTool(resolved),
  ];
  // A tool that still declares it changes no file under hooks (git_add: git runs no hook for it)
  // keeps its whole preview; the kit refuses a declared tool whose effect is incomplete.
  const hooked = resolved.enableHooks
    ? tools.map((tool) => (tool.spec.changesNoFiles === true ? tool : withHooksMayRun(tool)))
    : tools;
  return toolSet({ tools: hooked, prepare: gitPrepare(resolved) });
}

/** A git server for library use: the tools on the kit's pipeline, with an in-memory store unless the caller passes state. */
export function createGitServer(
  options: GitServerOptions & { jail: PathJail; name?: string; version?: string },
): KeelServer {
  return createServer({
    name: options.name ?? 'keel-git',
    version: options.version ?? packageVersion(new URL('../package.json', import.meta.url)),
    ...createGitServerTools(options),
    jail: options.jail,
  });
}
