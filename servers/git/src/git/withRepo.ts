import type { Outcome, ResolvedPath, ToolContext } from '@keel/kit';
import type { ResolvedGitOptions } from './options.js';
import { openRepo, type Repo } from './repo.js';

/**
 * Opens the repository named by the tool's `repo` argument (already resolved in the jail by the kit).
 * Only a tool that declares `repo` among its paths can call it: the type of `ctx.paths` says so.
 */
export async function repoOf(
  ctx: ToolContext<{ readonly repo: ResolvedPath }>,
  options: ResolvedGitOptions,
): Promise<Outcome<Repo>> {
  return await openRepo(ctx, options, ctx.paths.repo.real);
}
