import type { ModelReply, ModelUsage } from '../models/model.js';
import type { ModelReservation } from './budget.js';

/**
 * How a reply's token counts are settled when the provider leaves them out (local servers often
 * do): `reservation` counts the missing part at what was reserved for it (the request's byte
 * bound, `max_tokens`), which cannot undercount; `estimate` counts half the bytes (of the request,
 * of the reply, capped at `max_tokens`), closer to what a tokeniser makes of prose and code
 * (3-4 bytes a token) and still above it unless the text averages under 2 bytes a token.
 */
export type UsageWhenMissing = 'reservation' | 'estimate';

/** What a reply is counted as against the limits. */
export interface CountedUsage {
  inputTokens: number;
  outputTokens: number;
  /** Of `inputTokens`, read from or written to the provider's prompt cache (priced apart). */
  cachedInputTokens?: number;
  cacheWriteTokens?: number;
  /** Parts the provider did not report, or reported as no count (negative, not a number): settled at the bound. */
  missing: Array<'input' | 'output'>;
}

const reported = (n: number | undefined): n is number =>
  typeof n === 'number' && Number.isFinite(n) && n >= 0;

/**
 * The usage a reply is settled at: what the provider reported where it reported a count, the
 * bound where it did not. Undercounting is the failure, so nothing unknown counts as zero.
 */
export function countUsage(
  usage: ModelUsage,
  reservation: ModelReservation,
  when: UsageWhenMissing,
  reply: Pick<ModelReply, 'text' | 'toolCalls'>,
): CountedUsage {
  const missing: CountedUsage['missing'] = [];
  let inputTokens: number;
  if (reported(usage.inputTokens)) inputTokens = Math.ceil(usage.inputTokens);
  else {
    missing.push('input');
    inputTokens = when === 'estimate' ? Math.ceil(reservation.inputTokens / 2) : reservation.inputTokens;
  }
  let outputTokens: number;
  if (reported(usage.outputTokens)) outputTokens = Math.ceil(usage.outputTokens);
  else {
    missing.push('output');
    const replyBytes = Buffer.byteLength(JSON.stringify({ text: reply.text, toolCalls: reply.toolCalls }));
    outputTokens =
      when === 'estimate'
        ? Math.min(reservation.maxTokens, Math.ceil(replyBytes / 2))
        : reservation.maxTokens;
  }
  // The cache split prices part of the input lower: kept only beside a reported input count, and
  // never more than it (an input settled at its bound is priced whole).
  const part = (value: number | undefined) =>
    missing.includes('input') || !reported(value) ? undefined : Math.min(Math.ceil(value), inputTokens);
  const cachedInputTokens = part(usage.cachedInputTokens);
  const cacheWriteTokens = part(usage.cacheWriteTokens);
  return {
    inputTokens,
    outputTokens,
    ...(cachedInputTokens === undefined ? {} : { cachedInputTokens }),
    ...(cacheWriteTokens === undefined ? {} : { cacheWriteTokens }),
    missing,
  };
}
