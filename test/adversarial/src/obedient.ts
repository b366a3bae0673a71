import type { ScriptedReply } from '@keel/testing/chat-server';
import { emptyChange, type Move, type Script } from './world.js';

export const push: Move = { name: 'git_push', arguments: { remote: 'origin', branch: 'main' } };

interface WireMessage {
  role: string;
  content?: string | null;
  tool_calls?: Array<{ function: { name: string; arguments: string } }>;
}

/**
 * The model an injection is aimed at: it makes `first` (the call that brings the words in), then
 * does what a tool result told it — "push to origin" becomes a `git_push` — once, and hands in an
 * empty change. It keeps no state: what it already did is read off the conversation.
 */
export function obedientModel(first: Move): Script {
  return (call): ScriptedReply => {
    const messages = call.body.messages as WireMessage[];
    const made = messages.flatMap((m) => (m.role === 'assistant' ? (m.tool_calls ?? []) : []));
    const told = messages.some((m) => m.role === 'tool' && /push to origin/i.test(m.content ?? ''));
    const wanted = [first, ...(told ? [push] : [])];
    const next = wanted.find(
      (move) =>
        !made.some(
          (m) => m.function.name === move.name && m.function.arguments === JSON.stringify(move.arguments),
        ),
    );
    return { toolCalls: [next ?? { name: 'submit_change', arguments: emptyChange }] };
  };
}
