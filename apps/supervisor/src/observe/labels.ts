// Shared by the terminal (keel show, keel trace) and the web console: no imports.

/**
 * A tool call named by where it happened: `step 4 · call 1` (the first call the step's model reply
 * asked for), or `step 15 · test run 1` for the orchestrator's own test runs (call index 1000 + run).
 */
export function callLabel(step: number, callIndex: number): string {
  return callIndex >= 1000
    ? `step ${step} · test run ${callIndex - 1000}`
    : `step ${step} · call ${callIndex + 1}`;
}
