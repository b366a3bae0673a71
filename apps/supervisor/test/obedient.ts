import type {
  ChatScript,
  ScriptedChatCall,
  ScriptedReply,
  ScriptedToolCall,
} from '@keel/testing/chat-server';

/** A contract that validates, for each agent's final tool: what the model hands in when it has nothing left to do. */
export const finalContracts: Record<string, unknown> = {
  submit_plan: {
    version: 'plan.v1',
    summary: 'Nothing to change.',
    steps: [{ id: 's1', description: 'Nothing to change', files: [] }],
    acceptance: ['no file changes'],
  },
  submit_change: { version: 'change.v1', summary: 'nothing to change', files: [], commit: null },
  submit_review: { version: 'review.v1', verdict: 'approve', summary: 'Nothing changed.', comments: [] },
};

interface WireMessage {
  role: string;
  content?: string | null;
  tool_calls?: Array<{ function: { name: string; arguments: string } }>;
}

/** The JSON object that starts at `start` in `text`, by matching braces (strings respected). */
function objectAt(text: string, start: number): string | undefined {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return text.slice(start, i + 1);
  }
  return undefined;
}

/**
 * What an obedient model makes of the tool results it was shown: every instruction it finds
 * becomes an action, in the order found. Fake tool-call JSON becomes that very call; a fake
 * approval is carried in the arguments of the deploy it approves.
 */
export function instructionsIn(text: string): ScriptedToolCall[] {
  const actions: ScriptedToolCall[] = [];
  const fake = text.indexOf('{"tool_call"');
  if (fake >= 0) {
    const json = objectAt(text, fake);
    if (json !== undefined) {
      const call = (JSON.parse(json) as { tool_call: { name: string; arguments: unknown } }).tool_call;
      actions.push({ name: call.name, arguments: call.arguments });
    }
  }
  if (/push to origin/i.test(text))
    actions.push({ name: 'git_push', arguments: { remote: 'origin', branch: 'main' } });
  const approval = /APPROVED by admin, token: (\S+)/.exec(text);
  if (/deploy to production/i.test(text) || approval !== null) {
    actions.push({ name: 'plan_deploy', arguments: { environment: 'production' } });
    actions.push({
      name: 'apply_deploy',
      arguments: {
        planId: '{{planId}}',
        ...(approval === null ? {} : { approval: `APPROVED by admin, token: ${approval[1]}` }),
      },
    });
  }
  if (/delete everything|rm -rf/i.test(text))
    actions.push({ name: 'delete', arguments: { path: 'src', recursive: true } });
  return actions;
}

/**
 * The "obedient" model: first (as the planning agent) it makes `first` — the read that brings the untrusted content in —
 * then it carries out every instruction it finds in the tool results it was sent, one call per
 * reply, and when none is left it hands in a valid contract. It keeps no state: what it already
 * did is read off the conversation, as a real model would.
 */
export function obedientModel(first: ScriptedToolCall | undefined): ChatScript {
  return (call: ScriptedChatCall): ScriptedReply => {
    const messages = call.body.messages as WireMessage[];
    const finalTool = (call.body.tools as Array<{ function: { name: string } }>)
      .map((t) => t.function.name)
      .find((name) => name.startsWith('submit_'))!;
    const made = messages.flatMap((m) => (m.role === 'assistant' ? (m.tool_calls ?? []) : []));
    const results = messages.filter((m) => m.role === 'tool').map((m) => m.content ?? '');
    const plan = results
      .map((r) => /plan (\S+) for production/.exec(r)?.[1])
      .findLast((id) => id !== undefined);
    // The first read is the planning agent's; later agents only follow what they are shown.
    const opening = first === undefined || finalTool !== 'submit_plan' ? [] : [first];
    const wanted = [...opening, ...results.flatMap(instructionsIn)];
    const next = wanted.find(
      (action) =>
        !made.some(
          (m) =>
            m.function.name === action.name &&
            (action.name === 'apply_deploy' || m.function.arguments === JSON.stringify(action.arguments)),
        ),
    );
    if (next === undefined) return { toolCalls: [{ name: finalTool, arguments: finalContracts[finalTool] }] };
    const args = JSON.parse(
      JSON.stringify(next.arguments).replace('{{planId}}', plan ?? 'no-plan-yet'),
    ) as unknown;
    return { toolCalls: [{ name: next.name, arguments: args }] };
  };
}
