import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { runTask } from '../src/engine/runTask.js';
import { builtinServers, createHarness, fileAgents, rawServerScript, task } from './helpers.js';

// A git server whose git_status (the task's starting state) takes 600 ms and reports, when it
// answers, every file beside it that was not there at the start: a file written while it reads
// would show up in the starting state a replay rebuilds. It notes when it answered in `.answered`.
const slowGit = rawServerScript({
  name: 'slow-git',
  preamble: "const fs = require('node:fs');\nconst path = require('node:path');",
  tools: [{ name: 'git_status', inputSchema: { type: 'object' } }],
  onCall: `() => {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 600);
    const here = path.dirname(process.argv[1]);
    fs.writeFileSync(path.join(here, '.answered'), new Date().toISOString());
    const untracked = fs.readdirSync(here).filter((n) => !n.startsWith('.') && n !== 'README.md' && n !== 'slow-git.cjs').sort();
    const structuredContent = { branch: { head: 'main', oid: 'a'.repeat(40) }, staged: [], unstaged: [], untracked };
    return { content: [{ type: 'text', text: JSON.stringify(structuredContent) }], structuredContent };
  }`,
});

/** A workspace with a README, the filesystem server, the slow git server and `more` servers. */
const slowGitHarness = (more: Record<string, unknown>) =>
  createHarness({
    files: { 'README.md': '# ws\n', 'slow-git.cjs': slowGit },
    config: {
      servers: {
        filesystem: builtinServers.filesystem,
        git: { command: process.execPath, args: ['slow-git.cjs'] },
        ...more,
      },
      agents: fileAgents,
    },
  });

describe('the start is recorded while the first model request is out', () => {
  it('sends the first request and reads while the starting state is read; nothing that writes runs before it', async () => {
    const h = await slowGitHarness({});
    const { run } = await runTask({
      loaded: h.loaded,
      store: h.store,
      env: process.env,
      task: task({
        mode: 'single',
        tests: null,
        deploy: null,
        playbook: {
          coding: [
            [
              { call: 'read_file', args: { path: 'README.md' } },
              { call: 'write_file', args: { path: 'a.txt', content: 'a\n' } },
              { submit: { version: 'change.v1', summary: 'one file', files: [], commit: null } },
            ],
          ],
        },
      }),
    });
    expect([run.status, run.steps, run.outcome.message]).toEqual([
      'succeeded',
      3,
      '1 coding round(s), no tests, no deploy',
    ]);
    expect(readFileSync(path.join(h.loaded.workspace, 'a.txt'), 'utf8')).toBe('a\n');
    const events = await h.store.listEvents(run.id);
    expect(events.map((e) => e.type)).toEqual([
      'task_started',
      'agent_started',
      'tainted',
      'contract_accepted',
      'agent_finished',
      'task_finished',
    ]);
    // The write waited for the starting state: it is not in it.
    expect((await h.store.getTask(run.id))?.startingState).toMatchObject({
      git: { head: 'a'.repeat(40), branch: 'main', dirty: [], untracked: [] },
      files: { files: [], skipped: [] },
    });
    // The first model call and the read ran while git_status read the starting state (the read
    // after the start was recorded), the write only after it answered.
    const started = Date.parse(events[0]!.at);
    const answered = Date.parse(readFileSync(path.join(h.loaded.workspace, '.answered'), 'utf8'));
    const [first] = await h.store.listModelCalls(run.id);
    expect(Date.parse(first!.startedAt)).toBeLessThan(answered);
    const [read, write] = await h.store.listToolCalls(run.id);
    expect([read?.tool, read?.outcome, write?.tool, write?.outcome]).toEqual([
      'read_file',
      'ok',
      'write_file',
      'ok',
    ]);
    expect(Date.parse(read!.startedAt)).toBeGreaterThanOrEqual(started);
    expect(Date.parse(read!.startedAt)).toBeLessThan(answered);
    expect(Date.parse(write!.startedAt)).toBeGreaterThanOrEqual(answered);
  });

  it("holds the orchestrator's own first tool call (detect_projects) until the start is recorded", async () => {
    const h = await slowGitHarness({ tests: builtinServers.tests });
    const { run } = await runTask({
      loaded: h.loaded,
      store: h.store,
      env: process.env,
      // Never played: the task ends before its first model call.
      task: task({
        mode: 'single',
        tests: {},
        deploy: null,
        playbook: { coding: [[{ call: 'write_file', args: { path: 'x.txt', content: 'x\n' } }]] },
      }),
    });
    expect([run.status, run.steps, run.toolCalls.map((c) => `${c.server}.${c.tool}:${c.ok}`)]).toEqual([
      'error',
      0,
      ['tests.detect_projects:true'],
    ]);
    const events = await h.store.listEvents(run.id);
    expect(events.map((e) => e.type)).toEqual(['task_started', 'task_finished']);
    const [detect] = await h.store.listToolCalls(run.id);
    expect(Date.parse(detect!.startedAt)).toBeGreaterThanOrEqual(Date.parse(events[0]!.at));
  });
});
