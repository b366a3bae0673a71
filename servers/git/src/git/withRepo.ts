import type { Outcome, ToolContext } from '@keel/kit';
import type { ResolvedGitOptions } from './options.js';
import { openRepo, type Repo } from './repo.js';

/** Opens the repository named by the tool's `repo` argument (already resolved in the jail by the kit). */
export async function repoOf(ctx: ToolContext, options: ResolvedGitOptions): Promise<Outcome<Repo>> {
  return await openRepo(ctx, options, ctx.path('repo').real);
}
