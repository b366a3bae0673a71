import type { ReasoningEffort } from './model.js';

/**
 * Anthropic's thinking budget (`budget_tokens`) per reasoning effort. Thinking tokens are output
 * tokens: they come out of the agent's `maxTokens`, which the engine reserves and prices whole, so
 * effort never lets a call bill more than its reservation. 1024 is the smallest budget Anthropic takes.
 */
export const thinkingBudgets: Readonly<Record<ReasoningEffort, number>> = {
  low: 1024,
  medium: 4096,
  high: 16384,
};

/** What `maxTokens` keeps beside the thinking budget for the answer itself (text and tool calls). */
export const minAnswerTokens = 1024;

/**
 * The thinking budget of one call: the effort's, cut to what `maxTokens` leaves beside the answer
 * (the budget stage may lower `maxTokens` as a task's money or tokens run out); none when that is
 * below Anthropic's minimum — the call then goes out without thinking rather than past its reservation.
 */
export function thinkingBudget(effort: ReasoningEffort, maxTokens: number): number | undefined {
  const budget = Math.min(thinkingBudgets[effort], maxTokens - minAnswerTokens);
  return budget >= thinkingBudgets.low ? budget : undefined;
}
