import type { Reserve } from '../../limits/budget.js';
import { done, stopped, type Step, type Stop } from '../stop.js';

/** Hands a stop to a human where policy says so: done when the task may go on, the stop otherwise. */
export type Escalate = (stop: Stop) => Promise<Step<true>>;

const limitStop = (refused: Extract<Reserve<unknown>, { ok: false }>): Stop => ({
  status: 'limit',
  limit: refused.limit,
  message: refused.message,
});

/**
 * Reserve, else escalate, reserve again: a call the limits refuse waits for a human where policy
 * says so, and once a human continued the task (limits raised, a hint given) the reservation is
 * tried once more; a second refusal stops the task. `beforeRetry` runs between the continue and the
 * second try (a hint joins the messages whose bound is reserved).
 */
export async function reserveOrEscalate<T>(
  reserve: () => Reserve<T>,
  escalate: Escalate,
  beforeRetry?: () => void,
): Promise<Step<T>> {
  const first = reserve();
  if (first.ok) return done(first.reservation);
  const escalation = await escalate(limitStop(first));
  if (!escalation.ok) return escalation;
  beforeRetry?.();
  const second = reserve();
  return second.ok ? done(second.reservation) : stopped(limitStop(second));
}
