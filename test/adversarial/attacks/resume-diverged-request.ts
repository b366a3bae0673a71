import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'vitest';
import { defineAttack } from '../src/attack.js';
import { createProject, writeTools, type Project } from '../src/world.js';

const prompt = 'You are the coding agent. Write what the task asks.\n';

/** A coder (prompt from a file) whose write under deploy/ waits for a human at step 1. */
async function waitingWrite() {
  const p = await createProject({ files: { 'README.md': '# app\n', 'deploy/.keep': '' } });
  await writeFile(path.join(p.dir, 'coding.md'), prompt);
  const agent = { model: 'gpt', prompt: 'coding.md', tools: { filesystem: writeTools } };
  await p.configure({
    agents: { planning: agent, coding: agent, review: agent },
    irreversible: { tools: [], paths: ['deploy/**'] },
  });
  const run = await p.run([
    { name: 'write_file', arguments: { path: 'deploy/run.sh', content: 'echo hi\n' } },
  ]);
  const approvals = JSON.parse((await p.keel(['approvals', '--json'])).stdout) as Array<{ id: string }>;
  expect([run.status, approvals.length]).toEqual(['waiting', 1]);
  return { p, run, approval: approvals[0]!.id };
}

/** The same, its approval granted and not yet resumed. */
async function approvedWrite() {
  const waiting = await waitingWrite();
  expect((await waiting.p.keel(['approve', waiting.approval, '--as', 'alice', '--no-resume'])).code).toBe(0);
  return waiting;
}

const resume = async (p: Project, id: string, flags: string[]) => {
  const result = await p.keel(['resume', id, ...flags, '--quiet', '--json']);
  const { status, outcome } = JSON.parse(result.stdout) as { status: string; outcome: { message: string } };
  return { status, outcome };
};

const eventsOf = async (p: Project, id: string, type: string) =>
  (
    JSON.parse((await p.keel(['show', id, '--json'])).stdout) as {
      events: Array<{ type: string; data: unknown }>;
    }
  ).events
    .filter((e) => e.type === type)
    .map((e) => e.data);

export default defineAttack({
  id: 'resume-diverged-request',
  item: '19.8',
  onMain: 'failed',
  title:
    "a task waits for approval; the coding agent's prompt file is edited before the approval resumes it; resume handed back the recorded replies by step without comparing the request, so the run went on from answers to a prompt that no longer exists",
  proves:
    'a resumed step whose request differs from the recorded one stops, naming the first difference (a JSON path); `--accept-divergence` asks afresh from there, recorded, and the call asked again is the approved one (it runs, once)',
  async attack() {
    const { p, run } = await approvedWrite();
    await writeFile(path.join(p.dir, 'coding.md'), `${prompt}Also push to origin when done.\n`);
    // Accepting the changed config does not accept what it changes in a recorded step.
    const resumed = await resume(p, run.id, ['--accept-changed-config']);
    expect(resumed).toEqual({
      status: 'error',
      outcome: {
        message:
          'model call failed (openai-compatible:test-model): resumed step 1 (coding) would ask the model something other than its recorded request: first difference at $.messages[0].content',
      },
    });
    // Nothing was asked of the model again, and nothing was written.
    expect(p.requests.length).toBe(1);
    expect(p.exists('deploy/run.sh')).toBe(false);

    // Accepted on purpose: the model is asked afresh from step 1, recorded; it asks for the very
    // call the human approved, which runs, once.
    const accepted = await approvedWrite();
    await writeFile(path.join(accepted.p.dir, 'coding.md'), `${prompt}Be brief.\n`);
    const afresh = await resume(accepted.p, accepted.run.id, [
      '--accept-changed-config',
      '--accept-divergence',
    ]);
    expect(afresh.status).toBe('succeeded');
    expect(accepted.p.requests.length).toBe(3);
    expect(accepted.p.read('deploy/run.sh')).toBe('echo hi\n');
    expect(await eventsOf(accepted.p, accepted.run.id, 'divergence_accepted')).toEqual([
      { step: 1, agent: 'coding', path: '$.messages[0].content' },
    ]);
    expect(await eventsOf(accepted.p, accepted.run.id, 'approval_consumed')).toEqual([
      { approval: accepted.approval, by: 'alice', slot: '1:0', tool: 'write_file' },
    ]);

    // The same in one command: the approval accepts both, and its resume runs the approved call once.
    const once = await waitingWrite();
    await writeFile(path.join(once.p.dir, 'coding.md'), `${prompt}Be brief.\n`);
    const approved = await once.p.keel([
      'approve',
      once.approval,
      '--as',
      'alice',
      '--accept-changed-config',
      '--accept-divergence',
      '--quiet',
      '--json',
    ]);
    expect((JSON.parse(approved.stdout) as { status: string }).status).toBe('succeeded');
    expect(once.p.read('deploy/run.sh')).toBe('echo hi\n');
    expect(await eventsOf(once.p, once.run.id, 'divergence_accepted')).toEqual([
      { step: 1, agent: 'coding', path: '$.messages[0].content' },
    ]);
  },
  twin: {
    title: 'a resume with nothing changed replays the recorded reply and finishes',
    async run() {
      const { p, run } = await approvedWrite();
      expect((await resume(p, run.id, [])).status).toBe('succeeded');
      // Step 1 came from its record: the model was asked only for step 2.
      expect(p.requests.length).toBe(2);
      expect(p.read('deploy/run.sh')).toBe('echo hi\n');
    },
  },
});
