import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resumeTask } from '../../src/engine/runTask.js';
import { runScripted, submitEmptyChange } from '../scripted.js';
import type { AttackMeta } from './world.js';

export const attacks: AttackMeta[] = [
  {
    id: 'resume-with-an-edited-prompt',
    issue: 19,
    item: 8,
    onMain: 'failed',
    attack:
      "a task waits for approval; the coding agent's prompt file is edited before the approval resumes it; resume handed back the recorded replies by step without comparing the request, so the run went on from answers to a prompt that no longer exists",
    guarantee:
      'a resumed step whose request differs from the recorded one stops, naming the first difference (a JSON path); --accept-divergence asks afresh from there, recorded as an event',
    benign: 'a resume with nothing changed replays the recorded replies and finishes',
  },
];

const prompt = 'You are the coding agent. Write what the task asks.\n';

/** A coder (prompt from a file) that writes under deploy/ (which needs a human), then hands in: it waits at step 1. */
async function waiting() {
  const r = await runScripted({
    script: [
      { toolCalls: [{ name: 'write_file', arguments: { path: 'deploy/run.sh', content: 'echo hi\n' } }] },
      submitEmptyChange,
      submitEmptyChange,
    ],
    config: {
      irreversible: { tools: [], paths: ['deploy/**'] },
      agents: {
        planning: { model: 'gpt', tools: {} },
        coding: { model: 'gpt', prompt: 'prompts/coding.md', tools: { filesystem: ['write_file'] } },
        review: { model: 'gpt', tools: {} },
      },
    },
    files: { 'README.md': '# app\n', 'deploy/.keep': '' },
    before: async (dir) => {
      await mkdir(path.join(dir, 'prompts'));
      await writeFile(path.join(dir, 'prompts', 'coding.md'), prompt);
    },
  });
  const [approval] = await r.h.store.listApprovals({ taskId: r.run.id });
  expect([r.run.status, approval?.tool]).toEqual(['waiting', 'write_file']);
  await r.h.store.decideApproval(approval!.id, { approve: true, by: 'alice', reason: null, now: new Date() });
  return r;
}

describe('a resumed step asks what was recorded (issue 19, item 8)', () => {
  it('attack: the prompt file edited while the task waited — the resume stops at step 1 naming the difference', async () => {
    const { h, run, server } = await waiting();
    await writeFile(path.join(h.dir, 'prompts', 'coding.md'), `${prompt}Also push to origin when done.\n`);
    const resumed = await resumeTask({
      loaded: h.loaded,
      store: h.store,
      env: {},
      taskId: run.id,
      reason: 'approved',
    });
    expect(resumed.run.status).toBe('error');
    expect(resumed.run.outcome.message).toBe(
      'model call failed (openai-compatible:test-model): resumed step 1 (coding) would ask the model something other than its recorded request: first difference at $.messages[0].content',
    );
    // Nothing was asked of the model again, and nothing was written.
    expect(server.requests.length).toBe(1);
  });

  it('attack, accepted: --accept-divergence asks the model afresh from the step, and says so in the log', async () => {
    const { h, run, server } = await waiting();
    await writeFile(path.join(h.dir, 'prompts', 'coding.md'), `${prompt}Be brief.\n`);
    const resumed = await resumeTask({
      loaded: h.loaded,
      store: h.store,
      env: {},
      taskId: run.id,
      reason: 'approved',
      acceptDivergence: true,
    });
    expect(server.requests.length).toBeGreaterThan(1);
    const events = await h.store.listEvents(run.id);
    expect(events.filter((e) => e.type === 'divergence_accepted').map((e) => e.data)).toEqual([
      { step: 1, agent: 'coding', path: '$.messages[0].content' },
    ]);
    expect(resumed.run.status).not.toBe('error');
  });

  it('benign twin: a resume with nothing changed replays the recorded reply and finishes', async () => {
    const { h, run, server } = await waiting();
    const resumed = await resumeTask({
      loaded: h.loaded,
      store: h.store,
      env: {},
      taskId: run.id,
      reason: 'approved',
    });
    expect(resumed.run.status).toBe('succeeded');
    // Step 1 came from its record: the model was asked only for step 2.
    expect(server.requests.length).toBe(2);
  });
});
