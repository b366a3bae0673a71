import type { Fenceable, Fenced } from '../store/taskStore.js';

/**
 * Thrown by an owner's write the store refused FENCED: another process claimed the task, or a kill
 * moved its epoch on. It unwinds the whole run at once — this process no longer owns the task, so
 * no layer may write, decide or call anything more — and `runTask` ends the run without a write.
 */
export class FencedStop extends Error {
  readonly fenced: Fenced;

  constructor(fenced: Fenced) {
    super(fenced.message);
    this.name = 'FencedStop';
    this.fenced = fenced;
  }
}

/** What a fenced write returns, or the stop: `onFenced` hears it first (the session aborts its calls). */
export function unfenced<T>(result: Fenceable<T>, onFenced: (fenced: Fenced) => void): T {
  if (result.ok) return result.value;
  onFenced(result);
  throw new FencedStop(result);
}
