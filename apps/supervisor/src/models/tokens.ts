import type { ModelRequest } from './model.js';

/** Framing a provider adds per message (role markers, separators), generously. */
const perMessageOverhead = 16;
/** The hidden system text providers add when tools are offered (Anthropic documents ~350), generously. */
const toolsOverhead = 1024;
const requestOverhead = 64;

/**
 * An upper bound on a request's input tokens that cannot undercount: every token of a byte-level
 * BPE vocabulary covers at least one byte of UTF-8, and everything the provider tokenises is inside
 * the JSON counted here (escaped, so longer). It overcounts English text about fourfold; the engine
 * reconciles with the reported usage after each call.
 */
export function inputTokenBound(request: Pick<ModelRequest, 'messages' | 'tools'>): number {
  const sent = request.messages.map((m) => (m.role === 'tool' ? { ...m, structured: undefined } : m));
  return (
    Buffer.byteLength(JSON.stringify({ messages: sent, tools: request.tools })) +
    perMessageOverhead * request.messages.length +
    (request.tools.length > 0 ? toolsOverhead : 0) +
    requestOverhead
  );
}
