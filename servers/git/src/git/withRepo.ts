import {
  defineToolWith,
  ok,
  type AnyInputSchema,
  type AnyObjectSchema,
  type AnyTool,
  type PathDeclaration,
  type PathMode,
  type PrepareStep,
  type ToolSpec,
} from '@keel/kit';
import type { ResolvedGitOptions } from './options.js';
import { openRepo, type Repo } from './repo.js';

/** A git tool as the server holds it: its handler may read the repository the prepare step opened. */
export type GitTool = AnyTool<Repo>;

const defineWithRepo = defineToolWith<Repo>();

/**
 * Declares a tool on one repository: it must declare its `repo` argument as an existing path, and
 * its handler gets that repository, opened and checked against the jail, as `ctx.prepared`.
 */
export function defineRepoTool<
  TInput extends AnyInputSchema,
  TOutput extends AnyObjectSchema,
  TPaths extends PathDeclaration<TInput> & { repo: PathMode },
>(spec: ToolSpec<TInput, TOutput, TPaths, Repo>): GitTool {
  return defineWithRepo(spec);
}

/**
 * The git server's prepare step: the repository a call's `repo` names is opened once, before the
 * handler, for every tool that has one — no tool can skip the containment checks of `openRepo`.
 */
export function gitPrepare(options: ResolvedGitOptions): PrepareStep<Repo> {
  return async (call) => {
    const dir = call.paths.get('repo');
    if (dir === undefined || !('real' in dir)) return ok(undefined);
    return await openRepo(call, options, dir.real);
  };
}
