import path from 'node:path';

/** Tools irreversible whenever they act outside the task's own worktree. */
const destructiveOutsideWorktree = new Set([
  'delete',
  'move',
  'git_reset',
  'git_restore',
  'git_worktree_remove',
]);

export interface IrreversibleContext {
  workspace: string;
  /** Absolute paths of worktrees this task created (git_worktree_add). */
  ownWorktrees: readonly string[];
  /** Environment of each plan the task made (planId → environment). */
  planEnvironments: ReadonlyMap<string, string>;
  /** Environments whose policy requires approval; undefined when unknown (then every deploy counts). */
  approvalEnvironments: ReadonlySet<string> | undefined;
  extraTools: readonly string[];
}

export interface Classification {
  irreversible: boolean;
  reason?: string;
}

const pathArgs = ['path', 'source', 'destination', 'repository', 'repo', 'cwd', 'worktree'];

function insideOwnWorktree(args: Record<string, unknown>, ctx: IrreversibleContext): boolean {
  const paths = pathArgs.map((k) => args[k]).filter((v): v is string => typeof v === 'string');
  if (paths.length === 0 || ctx.ownWorktrees.length === 0) return false;
  return paths.every((p) => {
    const abs = path.resolve(ctx.workspace, p);
    return ctx.ownWorktrees.some((w) => abs === w || abs.startsWith(w + path.sep));
  });
}

/**
 * Classifies a tool call before it runs. Irreversible: `git_push`; `apply_deploy` and `rollback`
 * on an environment that requires approval (or whose policy is unknown); destructive file and git
 * tools outside the task's own worktree; and whatever the config adds.
 */
export function classifyCall(
  tool: string,
  args: Record<string, unknown>,
  ctx: IrreversibleContext,
): Classification {
  if (ctx.extraTools.includes(tool)) return { irreversible: true, reason: 'listed in irreversible.tools' };
  if (tool === 'git_push') return { irreversible: true, reason: 'a push publishes commits' };
  if (tool === 'apply_deploy' || tool === 'rollback') {
    const environment =
      typeof args['environment'] === 'string'
        ? args['environment']
        : typeof args['planId'] === 'string'
          ? ctx.planEnvironments.get(args['planId'])
          : undefined;
    if (environment === undefined || ctx.approvalEnvironments === undefined)
      return { irreversible: true, reason: 'the environment or its policy is unknown' };
    if (ctx.approvalEnvironments.has(environment))
      return { irreversible: true, reason: `environment '${environment}' requires approval` };
    return { irreversible: false };
  }
  if (destructiveOutsideWorktree.has(tool) && !insideOwnWorktree(args, ctx))
    return { irreversible: true, reason: `${tool} outside the task's own worktree` };
  return { irreversible: false };
}
