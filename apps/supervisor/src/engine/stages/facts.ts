import path from 'node:path';
import type { PlanFacts } from '../../approvals/gate.js';
import type { ToolResult } from '../../mcp/servers.js';

/** What a task learned from its own results that later classifications and approvals need. */
export interface TaskFacts {
  /** Absolute paths of the worktrees this task created (`git_worktree_add`). */
  readonly ownWorktrees: string[];
  /** The environment of each plan the task made (planId → environment). */
  readonly planEnvironments: Map<string, string>;
  /** Each plan the task made, as the deploy server needs it with a human's approval. */
  readonly plans: Map<string, PlanFacts>;
}

export const createTaskFacts = (): TaskFacts => ({
  ownWorktrees: [],
  planEnvironments: new Map(),
  plans: new Map(),
});

/** Learns from a result that succeeded: which environment a plan targets, which worktrees are the task's. */
export function learnFacts(
  facts: TaskFacts,
  workspace: string,
  tool: string,
  args: Record<string, unknown>,
  result: ToolResult,
): void {
  const structured = result.structured ?? {};
  if (tool === 'plan_deploy' && typeof structured['planId'] === 'string') {
    const environment = structured['environment'] ?? args['environment'];
    if (typeof environment === 'string') {
      facts.planEnvironments.set(structured['planId'], environment);
      if (typeof structured['planHash'] === 'string')
        facts.plans.set(structured['planId'], {
          planId: structured['planId'],
          planHash: structured['planHash'],
          environment,
        });
    }
  }
  if (tool === 'git_worktree_add' && typeof args['path'] === 'string')
    facts.ownWorktrees.push(path.resolve(workspace, args['path']));
}
