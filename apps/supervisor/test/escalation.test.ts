import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ChatScript } from '@keel/testing/chat-server';
import { describe, expect, it } from 'vitest';
import { keel } from './processes.js';
import {
  callList,
  escalatedWorld,
  heardHint,
  hintPrefix,
  stuckReader,
  submitEmptyChange as submit,
  userMessages,
} from './scripted.js';

/** Writes a.txt, then b.txt; after that it hands in once a human has spoken, and writes c.txt otherwise. */
const writer: ChatScript = (call) => {
  const turn = (call.body.messages as Array<{ role: string }>).filter((m) => m.role === 'assistant').length;
  if (turn < 2 || !heardHint(call)) {
    const file = ['a.txt', 'b.txt', 'c.txt'][Math.min(turn, 2)]!;
    return { toolCalls: [{ name: 'write_file', arguments: { path: file, content: `${file}\n` } }] };
  }
  return submit;
};

const loops = { repeat: 3, pingPong: 3, noProgressSteps: 10, onLoop: 'escalate' };

describe('escalations', () => {
  it('a loop escalates; keel continue with raised limits and a hint resumes it, the model hears the hint, and the task finishes', async () => {
    const { h, server, run, escalation } = await escalatedWorld(stuckReader, { loops });
    expect(run.status).toBe('escalated');
    expect(run.outcome).toEqual({
      message: `loop detected: the same call (read_file) 3 times in a row; a human should look at the task before it goes on — escalated as ${escalation.id}: keel continue ${escalation.id} [--raise LIMIT=N] [--hint TEXT], or keel abort ${escalation.id}`,
      loop: 'repeat',
    });
    expect([escalation.kind, escalation.status, escalation.tool, escalation.step]).toEqual([
      'escalation',
      'pending',
      'escalation:repeat',
      3,
    ]);
    expect(server.requests.length).toBe(3);
    const pending = await keel(['approvals', '--json'], h.dir);
    expect(JSON.parse(pending.stdout).map((a: { id: string; kind: string }) => [a.id, a.kind])).toEqual([
      [escalation.id, 'escalation'],
    ]);

    const hint = 'README.md will not change; hand in an empty change.';
    const continued = await keel(
      ['continue', escalation.id, '--raise', 'steps=20', '--hint', hint, '--as', 'tester', '--quiet'],
      h.dir,
    );
    expect(continued.stderr).toBe('');
    expect(continued.code).toBe(0);
    expect(continued.stdout).toMatch(
      new RegExp(`^continuing ${run.id} \\(${escalation.id}\\) as tester\\n[^]*status    succeeded\\n`),
    );

    // One more model call, the first to carry the hint, as a user message; nothing recorded was asked again.
    expect(server.requests.length).toBe(4);
    expect(
      server.requests.map((r) => userMessages(r).filter((c) => c === `${hintPrefix}${hint}`).length),
    ).toEqual([0, 0, 0, 1]);
    const task = await h.store.getTask(run.id);
    expect([task?.status, task?.run?.steps, task?.run?.outcome.message]).toEqual([
      'succeeded',
      4,
      '1 coding round(s), no tests, no deploy',
    ]);
    const events = await h.store.listEvents(run.id);
    expect(events.filter((e) => e.type.startsWith('escalation_')).map((e) => [e.type, e.data])).toEqual([
      ['escalation_requested', expect.objectContaining({ approval: escalation.id })],
      [
        'escalation_decided',
        { approval: escalation.id, by: 'tester', action: 'continue', raise: { steps: 20 }, hint },
      ],
      [
        'escalation_continued',
        { approval: escalation.id, by: 'tester', action: 'continue', raise: { steps: 20 }, hint },
      ],
    ]);
    expect(callList(await h.store.listToolCalls(run.id))).toEqual(Array(3).fill('filesystem.read_file:ok'));
    expect((await h.store.getApproval(escalation.id))?.status).toBe('consumed');
  });

  it('a step limit listed in escalateLimits escalates; continued with steps raised, the task finishes without writing a file twice', async () => {
    const { h, server, run, escalation } = await escalatedWorld(
      writer,
      { escalateLimits: ['steps'] },
      { steps: 2 },
    );
    expect(run.status).toBe('escalated');
    expect(run.outcome).toEqual({
      message: `step limit of 2 reached — escalated as ${escalation.id}: keel continue ${escalation.id} [--raise LIMIT=N] [--hint TEXT], or keel abort ${escalation.id}`,
      limit: 'steps',
    });
    expect([escalation.tool, escalation.reasons]).toEqual(['escalation:steps', ['step limit of 2 reached']]);
    expect(server.requests.length).toBe(2);

    const hint = 'Both files are written: hand in now.';
    const continued = await keel(
      ['continue', escalation.id, '--raise', 'steps=3', '--hint', hint, '--as', 'tester', '--quiet'],
      h.dir,
    );
    expect(continued.code).toBe(0);
    expect(continued.stdout).toContain('status    succeeded\n');
    expect(server.requests.length).toBe(3);
    expect(userMessages(server.requests[2]!).at(-1)).toBe(`${hintPrefix}${hint}`);
    const task = await h.store.getTask(run.id);
    expect([task?.status, task?.run?.steps]).toEqual(['succeeded', 3]);
    expect(callList(await h.store.listToolCalls(run.id))).toEqual([
      'filesystem.write_file:ok',
      'filesystem.write_file:ok',
    ]);
    expect(['a.txt', 'b.txt'].map((f) => readFileSync(path.join(h.repo.dir, f), 'utf8'))).toEqual([
      'a.txt\n',
      'b.txt\n',
    ]);
  });

  it('keel abort ends an escalated task failed, with the reason, and asks the model nothing more', async () => {
    const { h, server, run, escalation } = await escalatedWorld(stuckReader, { loops });
    expect(run.status).toBe('escalated');
    const aborted = await keel(
      ['abort', escalation.id, '--reason', 'the agent is stuck on README.md', '--as', 'tester'],
      h.dir,
    );
    expect(aborted).toEqual({
      code: 0,
      stdout: `aborted ${run.id} (${escalation.id}) as tester\n`,
      stderr: '',
    });
    const task = await h.store.getTask(run.id);
    expect([task?.status, task?.endedAt === null, task?.run?.status, task?.run?.outcome]).toEqual([
      'failed',
      false,
      'failed',
      { message: `aborted by tester (${escalation.id}): the agent is stuck on README.md` },
    ]);
    expect((await h.store.getApproval(escalation.id))?.status).toBe('denied');
    expect(server.requests.length).toBe(3);
    // An aborted task cannot be resumed.
    const resumed = await keel(['resume', run.id, '--quiet'], h.dir);
    expect(resumed).toEqual({
      code: 2,
      stdout: '',
      stderr: `keel: task ${run.id} has ended (failed); it cannot be resumed\n`,
    });
    expect(server.requests.length).toBe(3);
  });
});
