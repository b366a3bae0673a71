import type { KeelError } from './errors.js';

/**
 * The cancellation state of one call. The AbortSignal is made only when something asks for it:
 * Node's signals are EventTargets, costly to create and collect, and most calls finish without
 * ever needing one — on a trivial tool they were a fifth of the kit's per-call cost.
 */
export interface CallAbort {
  readonly signal: AbortSignal;
  readonly reason: KeelError | undefined;
  abort(reason: KeelError): void;
  /** Calls `listener` once on abort (at once if already aborted). */
  onAbort(listener: (reason: KeelError) => void): void;
  offAbort(listener: (reason: KeelError) => void): void;
}

export function createCallAbort(): CallAbort {
  let controller: AbortController | undefined;
  let reason: KeelError | undefined;
  let listeners: Array<(reason: KeelError) => void> | undefined;
  return {
    get signal() {
      if (controller === undefined) {
        controller = new AbortController();
        if (reason !== undefined) controller.abort(reason);
      }
      return controller.signal;
    },
    get reason() {
      return reason;
    },
    abort(why) {
      if (reason !== undefined) return;
      reason = why;
      controller?.abort(why);
      const toCall = listeners;
      listeners = undefined;
      for (const listener of toCall ?? []) listener(why);
    },
    onAbort(listener) {
      if (reason !== undefined) listener(reason);
      else (listeners ??= []).push(listener);
    },
    offAbort(listener) {
      const at = listeners?.indexOf(listener) ?? -1;
      if (at !== -1) listeners?.splice(at, 1);
    },
  };
}
