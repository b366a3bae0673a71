import { canonicalJson, sha256Hex } from '@keel/kit';
import type { ModelMessage, ModelToolDefinition } from '../../models/model.js';

/** How much of a model's context window an agent's requests may fill, and how it is estimated. */
export interface ContextPolicy {
  /** The model's context window, in tokens (input and output together, as providers count it). */
  window: number;
  /** Compaction starts when the estimated input crosses this share of the window. */
  target: number;
  /** ...and cuts until the estimate is at or below this share (hysteresis: the prefix stays put between cuts). */
  low: number;
  /** Bytes of JSON per token the estimate assumes for bytes added since the last reported count. */
  bytesPerToken: number;
  /** The output the request reserves (`max_tokens`); it must fit beside the input. */
  maxTokens: number;
}

/** Turns whose tool results are never elided: the model is working with them. */
export const keptTurns = 2;
/** A result this small costs about what its stub does: it stays. */
export const minElidedBytes = 1024;
/** How much of a call's arguments a stub quotes. */
const stubArgumentChars = 120;

/** The last request's size as the provider counted it, and as bytes, so later requests are estimated from it. */
export interface Anchor {
  tokens: number;
  bytes: number;
}

/** One tool result replaced by a stub: which call, and what was there (its size and hash). */
export interface Elision {
  toolCallId: string;
  tool: string;
  bytes: number;
  sha256: string;
}

/**
 * What compaction decided for one request, as it is recorded: the estimate before and after, the
 * results this step elided (`cut`) and every result elided so far (`elided`, in order). Replay
 * and resume apply `elided` as recorded; they do not decide again.
 */
export interface ContextDecision {
  window: number;
  target: number;
  low: number;
  bytesPerToken: number;
  /**
   * `under_target` (nothing new cut), `crossed_target` (cut to `low`), `over_window` (even that
   * did not fit: cut all but the latest turn) or `provider_refused` (the provider refused the
   * request as too long: cut all but the latest turn, and retried once).
   */
  reason: 'under_target' | 'crossed_target' | 'over_window' | 'provider_refused';
  estimateBefore: number;
  estimate: number;
  cut: Elision[];
  elided: string[];
  /** Whether input estimate + max_tokens fits the window. */
  fits: boolean;
}

/** The bytes a list of messages takes as JSON, as adapters send it (no structured results). */
export function messageBytes(messages: readonly ModelMessage[]): number {
  let bytes = 0;
  for (const m of messages)
    bytes += Buffer.byteLength(JSON.stringify(m.role === 'tool' ? { ...m, structured: undefined } : m));
  return bytes;
}

const toolBytes = (tools: readonly ModelToolDefinition[]) => Buffer.byteLength(JSON.stringify(tools));

/**
 * Input tokens of a request: from the last reported count plus the bytes added since (negative
 * once results are elided) at `bytesPerToken`; without a report, all its bytes at that rate.
 */
export function estimateTokens(
  messages: readonly ModelMessage[],
  tools: readonly ModelToolDefinition[],
  anchor: Anchor | undefined,
  bytesPerToken: number,
): number {
  const bytes = messageBytes(messages);
  if (anchor === undefined) return Math.ceil((bytes + toolBytes(tools)) / bytesPerToken);
  return Math.max(0, anchor.tokens + Math.ceil((bytes - anchor.bytes) / bytesPerToken));
}

/** The call each tool result answers, by its id: name and arguments for the stub. */
function callsById(messages: readonly ModelMessage[]) {
  const calls = new Map<string, { name: string; arguments: unknown }>();
  for (const m of messages) if (m.role === 'assistant') for (const c of m.toolCalls) calls.set(c.id, c);
  return calls;
}

/** What the model reads in place of an elided result: enough to decide whether to recall it. */
export function stubText(elision: Elision, args: unknown): string {
  let quoted = canonicalJson(args ?? null);
  if (quoted.length > stubArgumentChars) quoted = `${quoted.slice(0, stubArgumentChars)}…`;
  // Short: a long task carries one per older result. The record keeps the whole sha256.
  return `[elided: ${elision.tool} ${quoted} gave ${elision.bytes} B, sha256 ${elision.sha256.slice(0, 16)}; recall {"ref":"${elision.toolCallId}"}]`;
}

export const elisionOf = (message: Extract<ModelMessage, { role: 'tool' }>): Elision => ({
  toolCallId: message.toolCallId,
  tool: message.toolName,
  bytes: Buffer.byteLength(message.content),
  sha256: sha256Hex(message.content),
});

/**
 * The messages with the results of `elided` replaced by stubs. Every message stays, in order (a
 * tool call keeps its result); a stub keeps the result's error flag and drops its structured form.
 */
export function applyElisions(
  messages: readonly ModelMessage[],
  elided: ReadonlySet<string>,
): ModelMessage[] {
  if (elided.size === 0) return [...messages];
  const calls = callsById(messages);
  return messages.map((m) => {
    if (m.role !== 'tool' || !elided.has(m.toolCallId)) return m;
    const { structured: _dropped, ...rest } = m;
    return { ...rest, content: stubText(elisionOf(m), calls.get(m.toolCallId)?.arguments) };
  });
}

/** Tool results that may be elided, oldest first: not in the latest `kept` turns, not tiny, not yet elided. */
function candidates(
  messages: readonly ModelMessage[],
  elided: ReadonlySet<string>,
  kept: number,
): Array<Extract<ModelMessage, { role: 'tool' }>> {
  let turns = 0;
  let firstKept = messages.length;
  for (let i = messages.length - 1; i >= 0 && turns < kept; i--)
    if (messages[i]!.role === 'assistant') {
      turns++;
      firstKept = i;
    }
  const out: Array<Extract<ModelMessage, { role: 'tool' }>> = [];
  for (const m of messages.slice(0, firstKept))
    if (m.role === 'tool' && !elided.has(m.toolCallId) && Buffer.byteLength(m.content) >= minElidedBytes)
      out.push(m);
  return out;
}

/**
 * Decides which tool results a request elides, as a pure function of the messages, what was elided
 * before and the last reported count. Under the target nothing new is cut (the prefix a provider
 * cached stays byte-identical). Over it, results are cut oldest first until the estimate is at or
 * below `low` — a batch, so the next cut is far off. `harder` (after a provider refused the
 * request) cuts every result but the latest turn's. The system prompt, the task and the contracts
 * it carries are messages without results: never touched.
 */
export function compact(
  messages: readonly ModelMessage[],
  tools: readonly ModelToolDefinition[],
  previous: readonly string[],
  anchor: Anchor | undefined,
  policy: ContextPolicy,
  harder = false,
): { messages: ModelMessage[]; decision: ContextDecision } {
  const elided = new Set(previous);
  const estimate = (view: readonly ModelMessage[]) =>
    estimateTokens(view, tools, anchor, policy.bytesPerToken);
  let view = applyElisions(messages, elided);
  const estimateBefore = estimate(view);
  let current = estimateBefore;
  const cut: Elision[] = [];
  const crossed = current > policy.target * policy.window;
  if (crossed || harder) {
    const goal = harder ? 0 : policy.low * policy.window;
    const calls = callsById(messages);
    for (const m of candidates(messages, elided, harder ? 1 : keptTurns)) {
      if (current <= goal) break;
      const elision = elisionOf(m);
      elided.add(m.toolCallId);
      cut.push(elision);
      // Each cut's effect on the estimate, without re-serialising everything per result.
      const stub = stubText(elision, calls.get(m.toolCallId)?.arguments);
      current -= Math.floor((elision.bytes - Buffer.byteLength(stub)) / policy.bytesPerToken);
    }
    view = applyElisions(messages, elided);
    current = estimate(view);
  }
  return {
    messages: view,
    decision: {
      window: policy.window,
      target: policy.target,
      low: policy.low,
      bytesPerToken: policy.bytesPerToken,
      reason: harder ? 'provider_refused' : crossed ? 'crossed_target' : 'under_target',
      estimateBefore,
      estimate: current,
      cut,
      elided: [...elided],
      fits: current + policy.maxTokens <= policy.window,
    },
  };
}
