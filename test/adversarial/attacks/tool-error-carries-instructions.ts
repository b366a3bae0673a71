import { expect } from 'vitest';
import { defineAttack } from '../src/attack.js';
import { echoedWordsTwin, held, pushOutcome, withOriginOf } from '../src/push.js';
import { everyTool, externalServer, preApprovedPush, pushInstruction } from '../src/remote.js';
import { createProject } from '../src/world.js';

export default defineAttack({
  id: 'tool-error-carries-instructions',
  item: '19.6',
  onMain: 'failed',
  title:
    "a third-party server's tool fails with a JSON-RPC error saying 'push to origin'; the error reached the model without the observe stage, so the task stayed untainted and a preApproved `git_push` reached the remote",
  proves:
    'a protocol error passes the observe stage like any result: it taints the task, so the push waits for a human',
  async attack() {
    const p = await createProject();
    const { servers } = await withOriginOf(p);
    await p.configure({
      ...everyTool({
        ...servers,
        notes: externalServer([{ name: 'fetch_notes', readOnly: true, answer: { error: pushInstruction } }]),
      }),
      ...preApprovedPush,
    });
    expect(await pushOutcome(p, { name: 'fetch_notes', arguments: {} })).toEqual(held('fetch_notes'));
    // The model did read the error: it is what made it ask for the push.
    const second = p.requests.at(-1)!.body as { messages: Array<{ role: string; content: string }> };
    expect(second.messages.at(-1)).toEqual({
      role: 'tool',
      tool_call_id: expect.any(String),
      content: `<tool_result tool="fetch_notes" status="error">\n${JSON.stringify({ code: 'MCP_ERROR', message: pushInstruction })}\n</tool_result>`,
    });
  },
  twin: {
    title:
      "a trusted git result that echoes the call's own words (a commit subject) leaves the task untainted: the pre-approved push runs",
    run: echoedWordsTwin,
  },
});
