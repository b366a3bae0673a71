// Shared by `keel trace` (in Node) and the web console (in the browser): no imports.

/** A stretch of a task's time in which it waited for a person, in ms from the task's start. */
export interface Wait {
  startMs: number;
  endMs: number;
}

/** Waits past this share of a task's time are drawn short. */
const waitsDrawnShortPast = 0.2;
/** The share of the timeline one wait is drawn at then, and all of them at most. */
const shareOfOneWait = 0.06;

/**
 * Where a moment of a task falls on a drawn timeline, from 0 to 1. Time spent waiting for a
 * person — hours, against seconds of work — would squash the work against one edge: once the
 * waits take more than a fifth of the task's time, each is drawn at a fixed share (together at
 * most that fifth) and the running time spreads over the rest.
 */
export function timeline(totalMs: number, waits: readonly Wait[]): (ms: number) => number {
  if (totalMs <= 0) return () => 0;
  const merged: Wait[] = [];
  for (const w of [...waits].sort((a, b) => a.startMs - b.startMs)) {
    const startMs = Math.max(0, Math.min(totalMs, w.startMs));
    const endMs = Math.max(startMs, Math.min(totalMs, w.endMs));
    const last = merged.at(-1);
    if (last !== undefined && startMs <= last.endMs) last.endMs = Math.max(last.endMs, endMs);
    else if (endMs > startMs) merged.push({ startMs, endMs });
  }
  const waited = merged.reduce((sum, w) => sum + w.endMs - w.startMs, 0);
  if (waited <= waitsDrawnShortPast * totalMs) return (ms) => Math.min(1, Math.max(0, ms / totalMs));
  const waitShare = Math.min(shareOfOneWait, waitsDrawnShortPast / merged.length);
  const running = totalMs - waited;
  const runningScale = running === 0 ? 0 : (1 - waitShare * merged.length) / running;
  const waitScale = (w: Wait) => (running === 0 ? 1 / waited : waitShare / (w.endMs - w.startMs));
  return (ms) => {
    const t = Math.min(totalMs, Math.max(0, ms));
    let position = 0;
    let from = 0;
    for (const w of merged) {
      if (t <= w.startMs) return position + (t - from) * runningScale;
      position += (w.startMs - from) * runningScale;
      if (t <= w.endMs) return position + (t - w.startMs) * waitScale(w);
      position += (w.endMs - w.startMs) * waitScale(w);
      from = w.endMs;
    }
    return Math.min(1, position + (t - from) * runningScale);
  };
}
