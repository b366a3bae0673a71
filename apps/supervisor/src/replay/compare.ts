import { canonicalJson } from '@keel/kit/core';
import type { ToolCallRecord } from '../store/taskStore.js';

/** Where a replay first parted from its recording. */
export interface Divergence {
  kind:
    | 'tool_call'
    | 'tool_result'
    | 'missing_call'
    | 'extra_call'
    | 'contract'
    | 'approval'
    | 'model'
    | 'outcome';
  step: number;
  /** The tool call's index within its step (1000+ for the orchestrator's test runs). */
  callIndex?: number;
  agent: string;
  message: string;
  expected?: unknown;
  actual?: unknown;
  /** Set when the difference comes from outside the task (see `outsideWorldCause`). */
  cause?: { kind: 'outside_world'; url: string; explanation: string };
}

/** A network failure that says the other end is not there, or did not answer. */
const unreachable =
  /\b(?:ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|ECONNRESET|ETIMEDOUT|fetch failed|socket hang up|no answer within \d+ ms)\b/;
const urlPattern = /\bhttps?:\/\/[^\s"'<>)]+/g;

const stringsIn = (value: unknown): string[] =>
  typeof value === 'string'
    ? [value]
    : Array.isArray(value)
      ? value.flatMap(stringsIn)
      : value !== null && typeof value === 'object'
        ? Object.values(value).flatMap(stringsIn)
        : [];

/**
 * Whether a replayed result differs because something outside the task is gone: the replay could
 * not reach a URL that the recorded call reached (a health endpoint served only while the task
 * first ran, a service that is down). Such a divergence says nothing about the task or the tools.
 */
export function outsideWorldCause(recorded: unknown, replayed: unknown): Divergence['cause'] {
  const before = stringsIn(recorded);
  for (const text of stringsIn(replayed)) {
    const failure = unreachable.exec(text);
    if (failure === null) continue;
    for (const url of text.match(urlPattern) ?? []) {
      if (!before.some((t) => t.includes(url) && !unreachable.test(t))) continue;
      return {
        kind: 'outside_world',
        url,
        explanation: `the outside world changed, not the task: ${url} answered when the task ran, and the replay could not reach it (${failure[0]}) — an endpoint outside the task is gone or down`,
      };
    }
  }
  return undefined;
}

/** Path prefixes that differ between the recording and the replay by construction, and their label. */
export type Substitutions = ReadonlyArray<readonly [from: string, to: string]>;

/**
 * Values the environment mints afresh on every run (a commit's sha, a plan or release id, a test
 * run id) are hex runs of 7+ characters holding a digit. A replay maps each recorded one to the
 * one minted in its place, consistently both ways; anything else must match exactly.
 */
const mintedId = /(?<![0-9A-Za-z])(?=[0-9a-f]*[0-9])[0-9a-f]{7,64}(?![0-9A-Za-z])/g;
const isoTime = /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?/g;
/** Timings inside free text (test reporters print them): `(0.83ms)`, `1.2 s`, `duration_ms 12.5`. */
const textTiming = /\b\d+(?:\.\d+)?\s?(?:ms|s|µs|ns)\b|(?<=duration_ms[:=\s]\s?)\d+(?:\.\d+)?/g;
/** Keys whose values are measurements or clock readings, never behaviour. */
const volatileKey =
  /(?:ms|Ms|duration|Duration|latency|Latency|elapsed|Elapsed|timestamp|Timestamp|At|time|Time|date|Date|pid)$/;

const substitute = (text: string, subs: Substitutions) => {
  let out = text;
  for (const [from, to] of subs) if (from !== '') out = out.split(from).join(to);
  return out.replace(isoTime, '<time>').replace(textTiming, '<timing>');
};

/**
 * Compares a replay's tool calls with the recording's, in order, and learns the minted-id
 * aliases on the way — the replay model uses them to rewrite the recorded arguments it hands back
 * (a recorded `git_show {ref: <old sha>}` asks for the sha the replay's commit got).
 */
export class ReplayComparer {
  /** recorded → replayed */
  readonly aliases = new Map<string, string>();
  /** replayed → recorded */
  readonly reverse = new Map<string, string>();
  divergence: Divergence | undefined;
  #compared = 0;
  readonly #recorded: readonly ToolCallRecord[];
  readonly #subs: { recorded: Substitutions; replayed: Substitutions };

  constructor(
    recorded: readonly ToolCallRecord[],
    subs: { recorded: Substitutions; replayed: Substitutions },
  ) {
    this.#recorded = recorded;
    this.#subs = subs;
  }

  /** Recorded arguments as the replay must send them: recorded minted ids replaced by their aliases. */
  forward<T>(value: T): T {
    if (typeof value === 'string') return value.replace(mintedId, (id) => this.aliases.get(id) ?? id) as T;
    if (Array.isArray(value)) return value.map((v) => this.forward(v)) as T;
    if (value !== null && typeof value === 'object')
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.forward(v)])) as T;
    return value;
  }

  #back(text: string): string {
    return text.replace(mintedId, (id) => this.reverse.get(id) ?? id);
  }

  /** Equal strings once paths, times and known aliases are mapped; learns new aliases when `learn`. */
  #sameString(recorded: string, replayed: string, learn: boolean): boolean {
    const a = substitute(recorded, this.#subs.recorded);
    const b = substitute(this.#back(replayed), this.#subs.replayed);
    if (a === b) return true;
    if (!learn) return false;
    const idsA = a.match(mintedId) ?? [];
    const idsB = b.match(mintedId) ?? [];
    if (idsA.length !== idsB.length || a.replace(mintedId, '#') !== b.replace(mintedId, '#')) return false;
    const learned: Array<[string, string]> = [];
    for (const [i, x] of idsA.entries()) {
      const y = idsB[i]!;
      if (x === y) continue;
      // A sha may appear abbreviated later: only pairs of the same length are the same id.
      if (x.length !== y.length) return false;
      if (this.aliases.has(x) && this.aliases.get(x) !== y) return false;
      if (this.reverse.has(y) && this.reverse.get(y) !== x) return false;
      learned.push([x, y]);
    }
    for (const [x, y] of learned) {
      this.aliases.set(x, y);
      this.reverse.set(y, x);
      // A full sha's abbreviations are the same id.
      if (x.length === 40) {
        for (const n of [7, 8, 10, 12]) {
          this.aliases.set(x.slice(0, n), y.slice(0, n));
          this.reverse.set(y.slice(0, n), x.slice(0, n));
        }
      }
    }
    return true;
  }

  #same(recorded: unknown, replayed: unknown, key: string, learn: boolean): boolean {
    if (volatileKey.test(key) && typeof recorded === typeof replayed) return true;
    if (typeof recorded === 'string' && typeof replayed === 'string')
      return this.#sameString(recorded, replayed, learn);
    if (Array.isArray(recorded) && Array.isArray(replayed))
      return (
        recorded.length === replayed.length &&
        recorded.every((v, i) => this.#same(v, replayed[i], key, learn))
      );
    if (
      recorded !== null &&
      replayed !== null &&
      typeof recorded === 'object' &&
      typeof replayed === 'object' &&
      !Array.isArray(recorded) &&
      !Array.isArray(replayed)
    ) {
      const a = recorded as Record<string, unknown>;
      const b = replayed as Record<string, unknown>;
      const keys = Object.keys(a).sort();
      return (
        canonicalJson(keys) === canonicalJson(Object.keys(b).sort()) &&
        keys.every((k) => this.#same(a[k], b[k], k, learn))
      );
    }
    return Object.is(recorded, replayed);
  }

  /** Whether a replayed call's arguments are the recorded ones, minted ids mapped. */
  sameArguments(recorded: unknown, replayed: unknown): boolean {
    return this.#same(recorded, replayed, '', false);
  }

  /** Compares the replayed calls not compared yet; stops at (and keeps) the first divergence. */
  feed(replayed: readonly ToolCallRecord[]): Divergence | undefined {
    while (this.divergence === undefined && this.#compared < replayed.length) {
      this.divergence = this.#compare(this.#compared, replayed[this.#compared]!);
      this.#compared++;
    }
    return this.divergence;
  }

  /** After the replay ended: a recorded call it never made is a divergence too. */
  finish(replayed: readonly ToolCallRecord[]): Divergence | undefined {
    this.feed(replayed);
    if (this.divergence === undefined && this.#recorded.length > replayed.length) {
      const missing = this.#recorded[replayed.length]!;
      this.divergence = {
        kind: 'missing_call',
        step: missing.step,
        callIndex: missing.callIndex,
        agent: missing.agent,
        message: `the replay ended before ${missing.agent} called ${missing.tool} (call ${replayed.length + 1} of ${this.#recorded.length})`,
        expected: { tool: missing.tool, arguments: missing.arguments },
      };
    }
    return this.divergence;
  }

  get compared(): number {
    return this.#compared;
  }

  #compare(index: number, replayed: ToolCallRecord): Divergence | undefined {
    const recorded = this.#recorded[index];
    const where = { step: replayed.step, callIndex: replayed.callIndex, agent: replayed.agent };
    if (recorded === undefined)
      return {
        kind: 'extra_call',
        ...where,
        message: `the replay made a call the recording does not have: ${replayed.tool}`,
        actual: { tool: replayed.tool, arguments: replayed.arguments },
      };
    const identity = (c: ToolCallRecord) => `${c.step}/${c.callIndex} ${c.agent} ${c.server}.${c.tool}`;
    if (
      identity(recorded) !== identity(replayed) ||
      !this.#same(recorded.arguments, replayed.arguments, '', false)
    )
      return {
        kind: 'tool_call',
        ...where,
        message: `call ${index + 1}: the recording has ${identity(recorded)}, the replay ${identity(replayed)}${identity(recorded) === identity(replayed) ? ' with other arguments' : ''}`,
        expected: { tool: `${recorded.server}.${recorded.tool}`, arguments: recorded.arguments },
        actual: { tool: `${replayed.server}.${replayed.tool}`, arguments: replayed.arguments },
      };
    const result = (c: ToolCallRecord) => {
      const r = (c.result ?? {}) as { text?: unknown; structured?: unknown; error?: unknown };
      // The structured result when the tool gives one (its text renders it, with timings); else the text.
      return {
        outcome: c.outcome,
        errorCode: c.errorCode,
        ...(r.structured !== null && r.structured !== undefined
          ? { structured: r.structured }
          : { text: r.text ?? null }),
        ...(r.error !== null && r.error !== undefined ? { error: r.error } : {}),
      };
    };
    const expected = result(recorded);
    const actual = result(replayed);
    if (!this.#same(expected, actual, '', true)) {
      const cause = outsideWorldCause(expected, actual);
      return {
        kind: 'tool_result',
        ...where,
        message: `call ${index + 1} (${recorded.server}.${recorded.tool} at step ${recorded.step}): the result differs`,
        expected,
        actual,
        ...(cause === undefined ? {} : { cause }),
      };
    }
    return undefined;
  }
}
