import type { ProgressEvent, ProgressSink } from '../engine/session.js';

const compact = (n: number) =>
  n >= 1_000_000
    ? `${(n / 1_000_000).toFixed(1)}M`
    : n >= 1000
      ? `${(n / 1000).toFixed(1)}k`
      : String(Math.round(n));

const duration = (ms: number) => {
  const s = Math.max(0, Math.round(ms / 1000));
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
};

/** One line: the step, the agent, what it does, and the limits left. */
export function formatProgress(event: ProgressEvent): string {
  const { usage, limits } = event;
  const budget = [
    `steps ${usage.steps}/${limits.steps}`,
    `tokens ${compact(usage.inputTokens + usage.outputTokens)}/${compact(limits.tokens)}`,
    `tools ${usage.toolCalls}/${limits.toolCalls}`,
    `$${usage.costUsd.toFixed(3)}/${limits.costUsd.toFixed(2)}`,
    `${duration(event.msLeft)} left`,
  ].join(' · ');
  const what =
    event.kind === 'agent' ? `▶ ${event.detail}` : event.kind === 'note' ? `• ${event.detail}` : event.detail;
  return `[${String(event.step).padStart(3)}] ${event.agent.padEnd(12)} ${what.padEnd(44)} ${budget}`;
}

/** Progress on a stream: each event a line (a terminal and a log read the same). */
export function streamProgress(stream: NodeJS.WritableStream): ProgressSink {
  return (event) => {
    stream.write(`${formatProgress(event)}\n`);
  };
}
