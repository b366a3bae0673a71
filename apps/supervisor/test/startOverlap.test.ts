import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { runTask } from '../src/engine/runTask.js';
import { builtinServers, createHarness, fileAgents, rawServerScript, task } from './helpers.js';

// A git server whose git_status (the task's starting state) takes 400 ms and reports, when it
// answers, every file beside it that was not there at the start: a file written while it reads
// would show up in the starting state a replay rebuilds.
const slowGit = rawServerScript({
  name: 'slow-git',
  preamble: "const fs = require('node:fs');\nconst path = require('node:path');",
  tools: [{ name: 'git_status', inputSchema: { type: 'object' } }],
  onCall: `() => {
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 400);
    const here = path.dirname(process.argv[1]);
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
  it('sends the first request during the starting state; no tool runs, nothing is written before it', async () => {
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
              { call: 'write_file', args: { path: 'a.txt', content: 'a\n' } },
              { submit: { version: 'change.v1', summary: 'one file', files: [], commit: null } },
            ],
          ],
        },
      }),
    });
    expect([run.status, run.steps, run.outcome.message]).toEqual([
      'succeeded',
      2,
      '1 coding round(s), no tests, no deploy',
    ]);
    expect(readFileSync(path.join(h.loaded.workspace, 'a.txt'), 'utf8')).toBe('a\n');
    const events = await h.store.listEvents(run.id);
    expect(events.map((e) => e.type)).toEqual([
      'task_started',
      'agent_started',
      'contract_accepted',
      'agent_finished',
      'task_finished',
    ]);
    // The write waited for the starting state: it is not in it.
    const started = events[0]!;
    expect((started.data as { startingState: { git: unknown } }).startingState.git).toEqual({
      head: 'a'.repeat(40),
      branch: 'main',
      dirty: [],
      untracked: [],
    });
    expect((await h.store.getTask(run.id))?.startingState).toMatchObject({ git: { untracked: [] } });
    // The first model call started while the start was being read (400 ms before it was recorded),
    // and its record landed after `task_started`; the tool call started after it too.
    const [first, second] = await h.store.listModelCalls(run.id);
    expect(Date.parse(first!.startedAt)).toBeLessThan(Date.parse(started.at));
    expect(Date.parse(second!.startedAt)).toBeGreaterThanOrEqual(Date.parse(started.at));
    const [write] = await h.store.listToolCalls(run.id);
    expect([write?.tool, write?.outcome]).toEqual(['write_file', 'ok']);
    expect(Date.parse(write!.startedAt)).toBeGreaterThanOrEqual(Date.parse(started.at));
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
