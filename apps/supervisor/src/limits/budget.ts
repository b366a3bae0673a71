import type { LimitKind } from '@keel/contracts';
import type { Limits, Price } from '../config/schema.js';
import type { Clock } from '../clock.js';

/** What a task has used so far. `reserved*` is held by calls in flight. */
export interface Usage {
  steps: number;
  inputTokens: number;
  outputTokens: number;
  toolCalls: number;
  costUsd: number;
}

export interface ModelReservation {
  inputTokens: number;
  /** May be lower than the agent's max_tokens: shrunk to what the limits leave. */
  maxTokens: number;
  costUsd: number;
}

export type Reserve<T> = { ok: true; reservation: T } | { ok: false; limit: LimitKind; message: string };

export interface Settlement {
  /** Set when the provider reported more than was reserved and a limit was crossed by it. */
  crossed?: { limit: LimitKind; message: string; overshoot: number };
}

/** Output tokens a reply needs at least to be useful; a reservation that cannot fit this stops the task. */
export const minOutputTokens = 256;

const usd = (n: number) => `$${n.toFixed(4)}`;

/**
 * What a call cost: uncached input at the input rate, input read from or written to the prompt
 * cache at those rates (the input rate where the price names none), output at the output rate.
 */
export function costOf(
  price: Price | undefined,
  inputTokens: number,
  outputTokens: number,
  cache: { cachedInputTokens?: number; cacheWriteTokens?: number } = {},
): number {
  if (price === undefined) return 0;
  const read = cache.cachedInputTokens ?? 0;
  const written = cache.cacheWriteTokens ?? 0;
  return (
    ((inputTokens - read - written) * price.inputPerMTok +
      read * (price.cachedInputPerMTok ?? price.inputPerMTok) +
      written * (price.cacheWritePerMTok ?? price.inputPerMTok) +
      outputTokens * price.outputPerMTok) /
    1_000_000
  );
}

/**
 * The price a reservation holds: input at the higher of the input and cache-write rates (a
 * provider may write any of it to its cache, at up to 2x), so a limit cannot be crossed by caching.
 */
export const reservedPrice = (price: Price | undefined): Price | undefined =>
  price === undefined
    ? undefined
    : {
        inputPerMTok: Math.max(price.inputPerMTok, price.cacheWritePerMTok ?? 0),
        outputPerMTok: price.outputPerMTok,
      };

/**
 * A task's hard limits, as reservations: a call is admitted only if what it could use at worst
 * fits in what is left, and nothing is admitted once a limit is reached. After a model call the
 * reservation is replaced by the reported usage; usage past the reservation (a provider that
 * misreports) is the only way over a limit, and it is reported with the overshoot.
 */
export class Budget {
  readonly used: Usage = { steps: 0, inputTokens: 0, outputTokens: 0, toolCalls: 0, costUsd: 0 };
  // Money is kept as reported cost plus what is held for calls in flight, summed apart: adding a
  // reservation and later its difference to the reported cost leaves float residue in the record.
  #settledCostUsd = 0;
  #heldCostUsd = 0;
  #cachedInputTokens = 0;
  #limits: Limits;
  readonly #clock: Clock;
  readonly #startedAt: number;
  deadline: number;

  constructor(limits: Limits, clock: Clock, startedAt = clock.now()) {
    this.#limits = limits;
    this.#clock = clock;
    this.#startedAt = startedAt;
    this.deadline = startedAt + limits.wallClockMs;
  }

  /** A human raised limits (an escalation continued): the new values replace the old where higher. */
  raise(raised: Partial<Limits>): Limits {
    const next = { ...this.#limits };
    for (const [key, value] of Object.entries(raised) as Array<[keyof Limits, number | undefined]>)
      if (value !== undefined && value > next[key]) next[key] = value;
    this.#limits = next;
    this.deadline = this.#startedAt + next.wallClockMs;
    return next;
  }

  get limits(): Limits {
    return this.#limits;
  }

  get tokens(): number {
    return this.used.inputTokens + this.used.outputTokens;
  }

  /** Of the settled input tokens, those the provider reported as read from its prompt cache. */
  get cachedInputTokens(): number {
    return this.#cachedInputTokens;
  }

  msLeft(): number {
    return this.deadline - this.#clock.now();
  }

  #wallClock(): Reserve<never> | undefined {
    if (this.msLeft() <= 0)
      return {
        ok: false,
        limit: 'wall_clock',
        message: `wall-clock limit of ${this.#limits.wallClockMs} ms reached`,
      };
    return undefined;
  }

  /**
   * Reserves a model call: one step, the input bound plus `max_tokens`, and their price. `max_tokens`
   * shrinks to what the token and money limits leave, down to `minOutputTokens`. A `retry` of a
   * step's failed call reserves its tokens and price again, not another step.
   */
  reserveModelCall(
    inputBound: number,
    maxTokens: number,
    price: Price | undefined,
    agentCaps?: { steps?: number; tokens?: number; usedSteps: number; usedTokens: number },
    retry = false,
  ): Reserve<ModelReservation> {
    const late = this.#wallClock();
    if (late) return late;
    price = reservedPrice(price);
    if (!retry && this.used.steps >= this.#limits.steps)
      return { ok: false, limit: 'steps', message: `step limit of ${this.#limits.steps} reached` };
    if (!retry && agentCaps?.steps !== undefined && agentCaps.usedSteps >= agentCaps.steps)
      return { ok: false, limit: 'steps', message: `the agent's step limit of ${agentCaps.steps} reached` };
    let output = maxTokens;
    const tokensLeft = Math.min(
      this.#limits.tokens - this.tokens,
      agentCaps?.tokens === undefined ? Infinity : agentCaps.tokens - agentCaps.usedTokens,
    );
    output = Math.min(output, tokensLeft - inputBound);
    if (output < minOutputTokens)
      return {
        ok: false,
        limit: 'tokens',
        message: `token limit: ${inputBound} input (bound) + ${minOutputTokens} output would cross what is left (${Math.max(0, tokensLeft)} of ${this.#limits.tokens})`,
      };
    if (price !== undefined && price.outputPerMTok > 0) {
      const moneyLeft = this.#limits.costUsd - this.used.costUsd - costOf(price, inputBound, 0);
      output = Math.min(output, Math.floor((moneyLeft * 1_000_000) / price.outputPerMTok));
    }
    const cost = costOf(price, inputBound, output);
    if (output < minOutputTokens || this.used.costUsd + cost > this.#limits.costUsd)
      return {
        ok: false,
        limit: 'money',
        message: `money limit: the call could cost ${usd(costOf(price, inputBound, minOutputTokens))}, ${usd(Math.max(0, this.#limits.costUsd - this.used.costUsd))} of ${usd(this.#limits.costUsd)} is left`,
      };
    if (!retry) this.used.steps++;
    // Held until settled, so calls admitted meanwhile see it as spent.
    this.used.inputTokens += inputBound;
    this.used.outputTokens += output;
    this.#heldCostUsd += cost;
    this.used.costUsd = this.#settledCostUsd + this.#heldCostUsd;
    return { ok: true, reservation: { inputTokens: inputBound, maxTokens: output, costUsd: cost } };
  }

  /** Replaces a reservation by the reply's counted usage (see `countUsage`). */
  settleModelCall(
    reservation: ModelReservation,
    usage: {
      inputTokens: number;
      outputTokens: number;
      cachedInputTokens?: number;
      cacheWriteTokens?: number;
    },
    price: Price | undefined,
  ): Settlement {
    this.used.inputTokens += usage.inputTokens - reservation.inputTokens;
    this.used.outputTokens += usage.outputTokens - reservation.maxTokens;
    this.#heldCostUsd -= reservation.costUsd;
    this.#settledCostUsd += costOf(price, usage.inputTokens, usage.outputTokens, usage);
    this.#cachedInputTokens += usage.cachedInputTokens ?? 0;
    this.used.costUsd = this.#settledCostUsd + this.#heldCostUsd;
    if (this.tokens > this.#limits.tokens)
      return {
        crossed: {
          limit: 'tokens',
          overshoot: this.tokens - this.#limits.tokens,
          message: `the provider reported ${usage.inputTokens}+${usage.outputTokens} tokens against a reservation of ${reservation.inputTokens}+${reservation.maxTokens}: ${this.tokens - this.#limits.tokens} past the token limit of ${this.#limits.tokens}`,
        },
      };
    if (this.used.costUsd > this.#limits.costUsd)
      return {
        crossed: {
          limit: 'money',
          overshoot: this.used.costUsd - this.#limits.costUsd,
          message: `the provider's reported usage cost ${usd(this.used.costUsd - this.#limits.costUsd)} past the money limit of ${usd(this.#limits.costUsd)}`,
        },
      };
    return {};
  }

  /** Releases a reservation whose call the provider refused or never received (an HTTP error, a refused connection). */
  releaseModelCall(reservation: ModelReservation): void {
    this.used.inputTokens -= reservation.inputTokens;
    this.used.outputTokens -= reservation.maxTokens;
    this.#heldCostUsd -= reservation.costUsd;
    this.used.costUsd = this.#settledCostUsd + this.#heldCostUsd;
  }

  reserveToolCall(): Reserve<true> {
    const late = this.#wallClock();
    if (late) return late;
    if (this.used.toolCalls >= this.#limits.toolCalls)
      return {
        ok: false,
        limit: 'tool_calls',
        message: `tool-call limit of ${this.#limits.toolCalls} reached`,
      };
    this.used.toolCalls++;
    return { ok: true, reservation: true };
  }
}
