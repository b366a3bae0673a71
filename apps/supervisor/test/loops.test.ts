import { loopReplies, pingPongReplies, type ScriptedReply } from '@keel/testing/chat-server';
import { describe, expect, it } from 'vitest';
import { callList, emptyChange, runScripted, type ScriptedRun } from './scripted.js';

const call = (name: string, args: Record<string, unknown>): ScriptedReply => ({
  toolCalls: [{ name, arguments: args }],
});
const submit = call('submit_change', emptyChange);

/** What a loop ends as: a limit when the config says stop, an escalation for a human otherwise. */
const loopEnds = {
  stop: { status: 'limit', suffix: '' },
  escalate: { status: 'escalated', suffix: '; a human should look at the task before it goes on' },
} as const;

function expectLoopEnd(r: ScriptedRun, onLoop: 'stop' | 'escalate', loop: string, finding: string) {
  const end = loopEnds[onLoop];
  expect(r.run.status).toBe(end.status);
  // An escalation waits in the approvals queue under its own id, and the outcome says how to answer it.
  const id = /escalated as (es-[0-9a-f]{10}):/.exec(r.run.outcome.message)?.[1];
  const answer =
    onLoop === 'stop'
      ? ''
      : ` — escalated as ${id}: keel continue ${id} [--raise LIMIT=N] [--hint TEXT], or keel abort ${id}`;
  expect(r.run.outcome).toEqual({ message: `loop detected: ${finding}${end.suffix}${answer}`, loop });
  expect(r.events.at(-1)).toMatchObject({
    type: onLoop === 'stop' ? 'task_finished' : 'task_paused',
    data: { status: end.status, outcome: r.run.outcome },
  });
}

describe.each(['stop', 'escalate'] as const)('loop detection, onLoop: %s', (onLoop) => {
  it('repeat: the Nth identical call never reaches the server', async () => {
    const r = await runScripted({
      script: loopReplies({ name: 'read_file', arguments: { path: 'README.md' } }),
      config: { loops: { repeat: 3, onLoop } },
    });
    expectLoopEnd(r, onLoop, 'repeat', 'the same call (read_file) 3 times in a row');
    expect(r.server.requests.length).toBe(3);
    expect(callList(r.toolCalls)).toEqual(['filesystem.read_file:ok', 'filesystem.read_file:ok']);
  });

  it('ping-pong: the call that completes A-B-A-B-A-B never reaches the server', async () => {
    const r = await runScripted({
      script: pingPongReplies(
        call('read_file', { path: 'README.md' }),
        call('list_directory', { path: '.' }),
      ),
      config: { loops: { pingPong: 3, onLoop } },
    });
    expectLoopEnd(
      r,
      onLoop,
      'ping_pong',
      'calls alternating between read_file and list_directory for 3 rounds',
    );
    expect(r.server.requests.length).toBe(6);
    expect(callList(r.toolCalls)).toEqual([
      'filesystem.read_file:ok',
      'filesystem.list_directory:ok',
      'filesystem.read_file:ok',
      'filesystem.list_directory:ok',
      'filesystem.read_file:ok',
    ]);
  });

  it('no progress: N steps that change neither the workspace nor the contracts', async () => {
    const r = await runScripted({
      script: [
        call('read_file', { path: 'README.md' }),
        call('list_directory', { path: '.' }),
        call('stat', { path: 'README.md' }),
        submit,
      ],
      config: { loops: { noProgressSteps: 2, onLoop } },
    });
    expectLoopEnd(r, onLoop, 'no_progress', '2 steps without a change to the workspace or a new contract');
    expect(r.server.requests.length).toBe(2);
    expect(callList(r.toolCalls)).toEqual(['filesystem.read_file:ok', 'filesystem.list_directory:ok']);
  });
});

describe('no-progress detection', () => {
  it('a step that changes the workspace is progress and starts the count again', async () => {
    const r = await runScripted({
      script: [
        call('read_file', { path: 'README.md' }),
        call('write_file', { path: 'a.txt', content: 'a\n' }),
        call('read_file', { path: 'a.txt' }),
        call('stat', { path: 'README.md' }),
        submit,
      ],
      config: { loops: { noProgressSteps: 2, onLoop: 'stop' } },
    });
    expectLoopEnd(r, 'stop', 'no_progress', '2 steps without a change to the workspace or a new contract');
    expect(r.server.requests.length).toBe(4);
    expect(callList(r.toolCalls)).toEqual([
      'filesystem.read_file:ok',
      'filesystem.write_file:ok',
      'filesystem.read_file:ok',
      'filesystem.stat:ok',
    ]);
  });

  it('rewriting a file with the same bytes is not progress', async () => {
    const r = await runScripted({
      script: [
        call('write_file', { path: 'README.md', content: '# ws\n' }),
        call('read_file', { path: 'README.md' }),
        submit,
      ],
      config: { loops: { noProgressSteps: 2, onLoop: 'stop' } },
    });
    expectLoopEnd(r, 'stop', 'no_progress', '2 steps without a change to the workspace or a new contract');
    expect(r.server.requests.length).toBe(2);
    expect(callList(r.toolCalls)).toEqual(['filesystem.write_file:ok', 'filesystem.read_file:ok']);
  });
});
