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
  // The bytes of JSON.stringify({ messages, tools }) with tool messages' `structured` left out,
  // summed part by part: `{"messages":[` + the messages and their commas + `],"tools":` + tools + `}`.
  const messages = request.messages.reduce((sum, m) => sum + jsonBytes(m), 0);
  const json = 13 + messages + Math.max(0, request.messages.length - 1) + 10 + jsonBytes(request.tools) + 1;
  return (
    json +
    perMessageOverhead * request.messages.length +
    (request.tools.length > 0 ? toolsOverhead : 0) +
    requestOverhead
  );
}

/**
 * UTF-8 bytes of a message's JSON as sent (a tool message without `structured`), or of a tool list,
 * measured once per object: a conversation's messages are never changed once made (compaction makes
 * new ones), so each step counts only what it added instead of the whole conversation again.
 */
const measured = new WeakMap<object, number>();
function jsonBytes(value: object): number {
  let bytes = measured.get(value);
  if (bytes === undefined) {
    const sent = (value as { role?: unknown }).role === 'tool' ? { ...value, structured: undefined } : value;
    bytes = Buffer.byteLength(JSON.stringify(sent));
    measured.set(value, bytes);
  }
  return bytes;
}
