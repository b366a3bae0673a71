import picomatch from 'picomatch';
import { classifyCall, type Classification } from '../../limits/irreversible.js';
import type { Effect } from '../../limits/sideEffects.js';
import type { TaskFacts } from './facts.js';

export interface ClassifyOptions {
  workspace: string;
  /** Environments whose policy requires approval; undefined when unknown (then every deploy counts). */
  approvalEnvironments: ReadonlySet<string> | undefined;
  /** Policy's `irreversible.tools`. */
  extraIrreversible: readonly string[];
  /** Policy's `irreversible.paths`: globs a mutating call may not change without a human. */
  irreversiblePaths?: readonly string[];
}

/** Whether a call is irreversible: first by its tool and arguments, then by the effect it would have. */
export interface Classifier {
  /** By the tool and its arguments, with what the task learned so far (its plans, its worktrees). */
  call(tool: string, args: Record<string, unknown>): Classification;
  /** Policy's `irreversible.paths`: a call whose computed effect changes a matching path. */
  effect(tool: string, classification: Classification, effect: Effect): Classification;
}

export function createClassifier(options: ClassifyOptions, facts: TaskFacts): Classifier {
  const globs = options.irreversiblePaths ?? [];
  const irreversiblePath = globs.length === 0 ? () => false : picomatch([...globs], { dot: true });
  return {
    call: (tool, args) =>
      classifyCall(tool, args, {
        workspace: options.workspace,
        ownWorktrees: facts.ownWorktrees,
        planEnvironments: facts.planEnvironments,
        approvalEnvironments: options.approvalEnvironments,
        extraTools: options.extraIrreversible,
      }),
    effect(tool, classification, effect) {
      if (classification.irreversible || !effect.computable) return classification;
      const touched = effect.files.find((f) => irreversiblePath(f.path));
      return touched === undefined
        ? classification
        : { irreversible: true, reason: `${tool} would change ${touched.path} (irreversible.paths)` };
    },
  };
}
