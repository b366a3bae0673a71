/**
 * Where the harness reads the time. Every component that stamps or compares time takes a clock (or a
 * `now`) from its caller, so one operation runs on one clock and a test can fix it; `systemClock` is
 * the one place the wall clock is read, and only the edges (bins, CLI verbs, workers) pass it in.
 */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** The clock's time as a Date. */
export const dateOf = (clock: Clock): Date => new Date(clock.now());
