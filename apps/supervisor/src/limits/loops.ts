import type { Loops } from '../config/schema.js';

export type LoopKind = 'repeat' | 'ping_pong' | 'no_progress';

export interface LoopFinding {
  loop: LoopKind;
  message: string;
}

/**
 * Watches the sequence of tool calls (name + canonical arguments) and the task's state hash. A
 * call is checked before it starts: one that would complete a repeat or an A-B-A-B pattern is
 * refused. Progress is a new state hash (workspace tree and contracts so far).
 */
export class LoopDetector {
  readonly #options: Loops;
  readonly #calls: string[] = [];
  readonly #names: string[] = [];
  #lastState: string | undefined;
  #stepsWithoutProgress = 0;

  constructor(options: Loops) {
    this.#options = options;
  }

  /** Would this call, appended to the history, form a loop? */
  check(signature: string, name: string): LoopFinding | undefined {
    const history = [...this.#calls, signature];
    const n = this.#options.repeat;
    if (history.length >= n && history.slice(-n).every((s) => s === signature))
      return { loop: 'repeat', message: `the same call (${name}) ${n} times in a row` };
    const window = this.#options.pingPong * 2;
    if (history.length >= window) {
      const tail = history.slice(-window);
      const [a, b] = tail;
      if (a !== b && tail.every((s, i) => s === (i % 2 === 0 ? a : b))) {
        const other = this.#names[this.#names.length - 1] ?? '?';
        return {
          loop: 'ping_pong',
          message: `calls alternating between ${other} and ${name} for ${this.#options.pingPong} rounds`,
        };
      }
    }
    return undefined;
  }

  record(signature: string, name: string): void {
    this.#calls.push(signature);
    this.#names.push(name);
  }

  /** A human looked at a loop and let the task go on: the history starts again from here. */
  reset(): void {
    this.#calls.length = 0;
    this.#names.length = 0;
    this.#stepsWithoutProgress = 0;
  }

  /** Called after each step with the task's state hash. */
  observeState(hash: string): LoopFinding | undefined {
    if (hash !== this.#lastState) {
      this.#lastState = hash;
      this.#stepsWithoutProgress = 0;
      return undefined;
    }
    this.#stepsWithoutProgress++;
    if (this.#stepsWithoutProgress >= this.#options.noProgressSteps)
      return {
        loop: 'no_progress',
        message: `${this.#stepsWithoutProgress} steps without a change to the workspace or a new contract`,
      };
    return undefined;
  }
}
