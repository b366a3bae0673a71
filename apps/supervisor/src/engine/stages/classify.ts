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
  /**
   * By the effect the server previewed: its irreversible fact, or a change to a path matching
   * policy's `irreversible.paths`.
   */
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
      if (classification.irreversible) return classification;
      // A fact beyond the files that the server knows (a push publishes commits, or rewrites a branch).
      if (effect.preview?.irreversible !== undefined)
        return { irreversible: true, reason: `${tool}: ${effect.preview.irreversible}` };
      if (!effect.computable) return classification;
      const touched = effect.files.find((f) => irreversiblePath(f.path));
      return touched === undefined
        ? classification
        : { irreversible: true, reason: `${tool} would change ${touched.path} (irreversible.paths)` };
    },
  };
}
