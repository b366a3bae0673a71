import type { ContextDecision } from './compact.js';

const percent = (share: number) => `${Math.round(share * 100)}%`;

/**
 * One line for `keel show` on what compaction did to a request, or none when it cut nothing new:
 * why it cut, the estimate before and after against the window, and each result it elided.
 */
export function explainContext(request: unknown): string | undefined {
  const decision = (request as { context?: ContextDecision } | null)?.context;
  if (decision === undefined || decision.cut.length === 0) return undefined;
  const why = {
    under_target: 'under the target',
    crossed_target: `crossed ${percent(decision.target)} of ${decision.window}, cut to ${percent(decision.low)}`,
    over_window: `over the window of ${decision.window} at ${percent(decision.low)}: all but the latest turn`,
    provider_refused: `the provider refused the request as too long: all but the latest turn`,
  }[decision.reason];
  const cut = decision.cut.map(
    (c) => `${c.tool} ${c.toolCallId} (${c.bytes} B, sha256 ${c.sha256.slice(0, 12)})`,
  );
  return `context: ${why}; ~${decision.estimateBefore} → ~${decision.estimate} tokens; elided ${cut.join(', ')}; ${decision.elided.length} elided in all`;
}
