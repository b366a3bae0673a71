import type { KeelError } from './errors.js';

/** Something to tell when a call is aborted. An object rather than a callback: no closure per call. */
export interface AbortListener {
  onAbort(reason: KeelError): void;
}

/**
 * The cancellation state of one call. The AbortSignal is made only when something asks for it:
 * Node's signals are EventTargets, costly to create and collect, and most calls finish without
 * ever needing one — on a trivial tool they were a fifth of the kit's per-call cost.
 */
export class CallAbort {
  #controller: AbortController | undefined;
  #reason: KeelError | undefined;
  #listeners: AbortListener[] | undefined;

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#reason !== undefined) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  get reason(): KeelError | undefined {
    return this.#reason;
  }

  abort(reason: KeelError): void {
    if (this.#reason !== undefined) return;
    this.#reason = reason;
    this.#controller?.abort(reason);
    const listeners = this.#listeners;
    this.#listeners = undefined;
    for (const listener of listeners ?? []) listener.onAbort(reason);
  }

  /** Calls `listener.onAbort` once on abort (at once if already aborted). */
  listen(listener: AbortListener): void {
    if (this.#reason !== undefined) listener.onAbort(this.#reason);
    else (this.#listeners ??= []).push(listener);
  }

  unlisten(listener: AbortListener): void {
    const at = this.#listeners?.indexOf(listener) ?? -1;
    if (at !== -1) this.#listeners?.splice(at, 1);
  }
}
