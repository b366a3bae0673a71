import type { ScriptedReply } from '@keel/testing/chat-server';
import { describe, expect, it } from 'vitest';
import { callList, emptyChange, quoted, runScripted, toolMessagesOf } from './scripted.js';

const call = (name: string, args: unknown): ScriptedReply => ({ toolCalls: [{ name, arguments: args }] });

/** A tool call as the refusal records it: never sent, so no server and no idempotency key. */
const refusalRecord = (c: {
  server: string;
  tool: string;
  outcome: string;
  errorCode: string | null;
  idempotencyKey: string | null;
  arguments: unknown;
  resultBytes: number;
}) => ({
  server: c.server,
  tool: c.tool,
  outcome: c.outcome,
  errorCode: c.errorCode,
  idempotencyKey: c.idempotencyKey,
  arguments: c.arguments,
  resultBytes: c.resultBytes,
});

describe('tools the agent may not call', () => {
  it('a hallucinated tool is answered with UNKNOWN_TOOL, counts against the tool-call limit and reaches no server', async () => {
    const r = await runScripted({
      script: [call('frobnicate', { level: 11 }), call('read_file', { path: 'README.md' })],
      taskFile: { limits: { toolCalls: 1 } },
    });
    const offered = (r.server.requests[0]!.body.tools as Array<{ function: { name: string } }>)
      .map((t) => t.function.name)
      .filter((name) => name !== 'submit_change');
    expect(toolMessagesOf(r.server, 1)).toEqual([
      {
        role: 'tool',
        tool_call_id: 'call_0_0',
        content: quoted(
          'frobnicate',
          'error',
          JSON.stringify({
            code: 'UNKNOWN_TOOL',
            message: "there is no tool named 'frobnicate'",
            hint: `use one of: ${offered.join(', ')}`,
          }),
        ),
      },
    ]);
    expect(r.toolCalls.map(refusalRecord)).toEqual([
      {
        server: '',
        tool: 'frobnicate',
        outcome: 'refused',
        errorCode: 'UNKNOWN_TOOL',
        idempotencyKey: null,
        arguments: { level: 11 },
        resultBytes: 0,
      },
    ]);
    // The refusal used the one tool call allowed: the read that follows is stopped before it starts.
    expect(r.run.status).toBe('limit');
    expect(r.run.outcome).toEqual({ message: 'tool-call limit of 1 reached', limit: 'tool_calls' });
    expect(r.server.requests.length).toBe(2);
    expect(r.run.toolCalls).toEqual([
      { server: '', tool: 'frobnicate', latencyMs: 0, ok: false, irreversible: false },
    ]);
  });

  it("a tool of another server outside the agent's scope is answered with OUT_OF_SCOPE and never runs", async () => {
    const r = await runScripted({
      script: [
        call('write_file', { path: 'x.txt', content: 'x\n' }),
        call('read_file', { path: 'README.md' }),
      ],
      taskFile: { mode: 'orchestrated', limits: { toolCalls: 1 } },
    });
    const scope = ['read_file', 'list_directory', 'search_text', 'stat', 'git_status', 'git_log', 'git_diff'];
    // The planning agent is offered its scope and its final tool, nothing else.
    expect(
      (r.server.requests[0]!.body.tools as Array<{ function: { name: string } }>).map((t) => t.function.name),
    ).toEqual([...scope, 'submit_plan']);
    expect(toolMessagesOf(r.server, 1)).toEqual([
      {
        role: 'tool',
        tool_call_id: 'call_0_0',
        content: quoted(
          'write_file',
          'error',
          JSON.stringify({
            code: 'OUT_OF_SCOPE',
            message: "'write_file' (server filesystem) is not among the planning agent's tools",
            hint: `use one of: ${scope.join(', ')}`,
          }),
        ),
      },
    ]);
    expect(r.toolCalls.map(refusalRecord)).toEqual([
      {
        server: '',
        tool: 'write_file',
        outcome: 'refused',
        errorCode: 'OUT_OF_SCOPE',
        idempotencyKey: null,
        arguments: { path: 'x.txt', content: 'x\n' },
        resultBytes: 0,
      },
    ]);
    expect(r.exists('x.txt')).toBe(false);
    expect(r.run.status).toBe('limit');
    expect(r.run.outcome).toEqual({ message: 'tool-call limit of 1 reached', limit: 'tool_calls' });
    expect(r.server.requests.length).toBe(2);
    expect(r.modelCalls.map((c) => c.agent)).toEqual(['planning', 'planning']);
  });
});

describe('contracts handed in through the final tool', () => {
  it('an invalid contract goes back to the model with its issues; the corrected one is accepted', async () => {
    const r = await runScripted({
      script: [call('submit_change', { ...emptyChange, summary: '' }), call('submit_change', emptyChange)],
    });
    expect(r.run.status).toBe('succeeded');
    expect(r.flow.change).toEqual(emptyChange);
    const issue = { path: 'summary', message: 'Too small: expected string to have >=1 characters' };
    expect(toolMessagesOf(r.server, 1)).toEqual([
      {
        role: 'tool',
        tool_call_id: 'call_0_0',
        content: JSON.stringify({
          code: 'INVALID_CONTRACT',
          message: `change.v1 is invalid: ${issue.path}: ${issue.message}`,
          issues: [issue],
          hint: 'call submit_change again with a value that matches change.v1',
        }),
      },
    ]);
    expect(r.server.requests.length).toBe(2);
    expect(r.toolCalls).toEqual([]);
    expect(r.events.filter((e) => e.type.startsWith('contract_')).map((e) => [e.type, e.data])).toEqual([
      [
        'contract_rejected',
        { agent: 'coding', contract: 'change.v1', code: 'INVALID_CONTRACT', issues: [issue] },
      ],
      ['contract_accepted', { agent: 'coding', contract: 'change.v1', value: emptyChange }],
    ]);
  });

  it('a version mismatch names both versions, and past contractRetries the task stops', async () => {
    const r = await runScripted({
      script: [
        call('submit_change', { ...emptyChange, version: 'change.v2' }),
        call('submit_change', { ...emptyChange, files: 'all of them' }),
        call('submit_change', emptyChange),
      ],
      taskFile: { limits: { contractRetries: 1 } },
    });
    expect(toolMessagesOf(r.server, 1)).toEqual([
      {
        role: 'tool',
        tool_call_id: 'call_0_0',
        content: JSON.stringify({
          code: 'VERSION_MISMATCH',
          message: 'contract version mismatch: expected change.v1, got change.v2',
          issues: [{ path: 'version', message: 'expected "change.v1", got "change.v2"' }],
          hint: 'call submit_change again with a value that matches change.v1',
        }),
      },
    ]);
    expect(r.run.status).toBe('limit');
    expect(r.run.outcome).toEqual({
      message:
        'the coding agent handed in an invalid change.v1 2 times: change.v1 is invalid: files: Invalid input: expected array, received string',
      limit: 'contract_retries',
    });
    expect(r.server.requests.length).toBe(2);
    expect(r.flow.change).toBeUndefined();
  });
});

describe('calls the harness answers itself are still counted', () => {
  it('arguments that are not a JSON object are refused as INVALID_ARGUMENT before any server', async () => {
    const r = await runScripted({
      script: [call('write_file', '["a.txt"]'), call('submit_change', emptyChange)],
    });
    expect(r.run.status).toBe('succeeded');
    expect(callList(r.toolCalls)).toEqual(['.write_file:refused']);
    expect(toolMessagesOf(r.server, 1)).toEqual([
      {
        role: 'tool',
        tool_call_id: 'call_0_0',
        content: quoted(
          'write_file',
          'error',
          JSON.stringify({
            code: 'INVALID_ARGUMENT',
            message: 'the arguments of write_file are not a JSON object',
            hint: 'send the arguments as one JSON object matching the tool schema',
          }),
        ),
      },
    ]);
    expect(r.exists('a.txt')).toBe(false);
  });
});
