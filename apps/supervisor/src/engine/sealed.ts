import type { ModelMessage } from '../models/model.js';

/**
 * Seals the messages of a request before it goes out: each message, with everything it holds, is
 * frozen once. What Keel keeps per message object — its byte count for the token bound
 * (models/tokens.ts), its stored body (store/messages.ts), its as-sent form (recordedReply.ts) — is
 * made once because a message is never changed after it was sent; compaction and hints make new
 * ones. Frozen, a change throws where it is made (ES modules run in strict mode) instead of leaving
 * the record of the next request silently different from what was sent.
 */
export function sealMessages(messages: readonly ModelMessage[]): void {
  for (const message of messages) if (!Object.isFrozen(message)) deepFreeze(message);
}

function deepFreeze(value: unknown): void {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return;
  Object.freeze(value);
  for (const inner of Object.values(value)) deepFreeze(inner);
}
