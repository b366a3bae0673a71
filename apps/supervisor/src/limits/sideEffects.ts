import picomatch from 'picomatch';
import type { LimitKind } from '@keel/contracts';
import type { EffectPreview } from '@keel/kit';
import type { SideEffects } from '../config/schema.js';

/** One path a call would change, relative to the workspace. */
export interface EffectFileChange {
  path: string;
  linesAdded: number;
  linesRemoved: number;
  /** A directory created or removed: protected like a file, not counted as a file changed. */
  directory?: boolean;
}

/**
 * A mutating call's effect on the workspace, computed before it runs from the server's preview
 * (kept whole, with the binding the real call carries).
 */
export type Effect =
  | {
      computable: true;
      files: EffectFileChange[];
      preview?: EffectPreview;
      /** The preview was an error (the plan refused the call): the real call is bound to that. */
      refused?: true;
    }
  | { computable: false; reason: string; preview?: EffectPreview };

export const noEffect: Effect = { computable: true, files: [] };

export interface CapCrossing {
  limit: LimitKind;
  message: string;
}

/**
 * The task's side-effect caps: distinct files changed, lines changed, protected globs. A call is
 * admitted only if its effect, added to what the task already changed, stays inside every cap; a
 * call whose effect cannot be computed counts as crossing whenever a cap is set.
 */
export class SideEffectLedger {
  readonly #caps: SideEffects;
  readonly #isProtected: (path: string) => boolean;
  readonly files = new Set<string>();
  lines = 0;

  constructor(caps: SideEffects) {
    this.#caps = caps;
    this.#isProtected =
      caps.protectedPaths.length === 0 ? () => false : picomatch(caps.protectedPaths, { dot: true });
  }

  get capped(): boolean {
    return (
      this.#caps.maxFilesChanged !== undefined ||
      this.#caps.maxLinesChanged !== undefined ||
      this.#caps.protectedPaths.length > 0
    );
  }

  check(tool: string, effect: Effect): CapCrossing | undefined {
    if (!effect.computable) {
      if (!this.capped) return undefined;
      const limit: LimitKind =
        this.#caps.maxFilesChanged !== undefined
          ? 'files_changed'
          : this.#caps.maxLinesChanged !== undefined
            ? 'lines_changed'
            : 'protected_path';
      return {
        limit,
        message: `the effect of ${tool} cannot be computed before it runs (${effect.reason}), so it counts as crossing the ${limit.replace('_', ' ')} cap`,
      };
    }
    const hit = effect.files.find((f) => this.#isProtected(f.path));
    if (hit !== undefined)
      return { limit: 'protected_path', message: `${tool} would change ${hit.path}, a protected path` };
    const files = new Set([
      ...this.files,
      ...effect.files.filter((f) => f.directory !== true).map((f) => f.path),
    ]);
    if (this.#caps.maxFilesChanged !== undefined && files.size > this.#caps.maxFilesChanged)
      return {
        limit: 'files_changed',
        message: `${tool} would bring the files changed to ${files.size}, over the cap of ${this.#caps.maxFilesChanged}`,
      };
    const lines = this.lines + effect.files.reduce((n, f) => n + f.linesAdded + f.linesRemoved, 0);
    if (this.#caps.maxLinesChanged !== undefined && lines > this.#caps.maxLinesChanged)
      return {
        limit: 'lines_changed',
        message: `${tool} would bring the lines changed to ${lines}, over the cap of ${this.#caps.maxLinesChanged}`,
      };
    return undefined;
  }

  commit(effect: Effect): void {
    if (!effect.computable) return;
    for (const file of effect.files) {
      if (file.directory !== true) this.files.add(file.path);
      this.lines += file.linesAdded + file.linesRemoved;
    }
  }
}
