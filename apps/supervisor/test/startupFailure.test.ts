import { access } from 'node:fs/promises';
import path from 'node:path';
import type { KeelError } from '@keel/kit';
import { describe, expect, it } from 'vitest';
import { resumeTask, runTask } from '../src/engine/runTask.js';
import { builtinServers, createHarness, fileAgents, rawServerScript, task } from './helpers.js';

const pathExists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

// A server that starts, lists a `git_status` and exits on its first call: the start-up's own
// git_status (the task's starting state) finds it gone. On the old code the run threw with the task
// left `starting` and its owner released — no worker's reaper ever resumes an ownerless task, and
// `keel runs` showed it starting for good.
const diesOnFirstCall = rawServerScript({
  name: 'dies-on-first-call',
  tools: [{ name: 'git_status', inputSchema: { type: 'object' } }],
  onCall: '() => process.exit(3)',
});

/** A workspace with a README and `script` as `name`, the filesystem server, `servers`, and agents that use files. */
const harnessWith = (name: string, script: string, servers: Record<string, unknown>) =>
  createHarness({
    files: { 'README.md': '# ws\n', [name]: script },
    config: { servers: { filesystem: builtinServers.filesystem, ...servers }, agents: fileAgents },
  });

/** The error a run threw; undefined when it ended without one. */
const thrownBy = (run: Promise<unknown>) =>
  run.then(
    () => undefined,
    (error: unknown) => error as KeelError,
  );

const spec = () =>
  task({
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
  });

describe('a server that dies during the start-up, after it started', () => {
  it('ends the task error, recorded, its owner released: keel resume tries it again', async () => {
    const h = await harnessWith('dies.mjs', diesOnFirstCall, {
      git: { command: process.execPath, args: ['dies.mjs'] },
    });
    const thrown = await thrownBy(
      runTask({ loaded: h.loaded, store: h.store, env: process.env, task: spec() }),
    );
    const [stopped] = await h.store.listTasks({});
    const message = `the task's start-up failed: Connection closed; keel resume ${stopped!.id} starts its servers again`;
    expect([thrown?.code, thrown?.message, thrown?.hint]).toEqual([
      'UNAVAILABLE',
      `task ${stopped!.id}: ${message}`,
      `keel show ${stopped!.id} has what was recorded`,
    ]);
    expect([stopped?.status, stopped?.run?.outcome.message, stopped?.run?.error?.code]).toEqual([
      'error',
      message,
      'TASK_ERROR',
    ]);
    // The first model call goes out while the starting state is read, so it may have been made (and
    // recorded) before the server was found gone: the run says so. Its write_file waited for the
    // starting state, so it was never sent.
    const models = await h.store.listModelCalls(stopped!.id);
    expect(stopped?.run?.steps).toBe(models.length);
    const events = (await h.store.listEvents(stopped!.id)).map((e) => e.type);
    expect([events[0], events.at(-1)]).toEqual(['task_started', 'task_finished']);
    expect(await h.store.getOwner(stopped!.id)).toBeNull();
    expect(await h.store.listToolCalls(stopped!.id)).toEqual([]);
    expect(await pathExists(path.join(h.loaded.workspace, 'a.txt'))).toBe(false);
    // Resumable, as the message says: the server dies again the same way, and the end is recorded again.
    await expect(
      resumeTask({
        loaded: h.loaded,
        store: h.store,
        env: process.env,
        taskId: stopped!.id,
        reason: 'again',
      }),
    ).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      message: expect.stringMatching(/: the task's start-up failed: Connection closed;/),
    });
    const again = await h.store.getTask(stopped!.id);
    expect(again?.status).toBe('error');
    expect(await h.store.getOwner(stopped!.id)).toBeNull();
  });
});

// Never played: the run stops before its first model call.
const turn = [[{ call: 'read_file', args: { path: 'README.md' } }]];

describe('an agent that names a tool its server lacks', () => {
  it('ends the task error with the fix in its outcome, its owner released', async () => {
    const h = await createHarness({
      config: {
        agents: {
          planning: { model: 'playbook', tools: { filesystem: ['no_such_tool'] } },
          coding: { model: 'playbook', tools: { filesystem: ['write_file'] } },
          review: { model: 'playbook', tools: { filesystem: ['read_file'] } },
        },
      },
    });
    const thrown = await thrownBy(
      runTask({
        loaded: h.loaded,
        store: h.store,
        env: process.env,
        task: task({ tests: null, deploy: null, playbook: { planning: turn, coding: turn, review: turn } }),
      }),
    );
    expect([thrown?.code, thrown?.message]).toEqual([
      'INVALID_ARGUMENT',
      "agents.planning.tools.filesystem: the server has no tool 'no_such_tool'",
    ]);
    const [stopped] = await h.store.listTasks({});
    expect([stopped?.status, stopped?.run?.outcome.message]).toEqual([
      'error',
      `the task's start-up failed: ${thrown?.message}; ${thrown?.hint}`,
    ]);
    expect(thrown?.hint).toMatch(/^its tools: .*write_file/);
    expect(await h.store.getOwner(stopped!.id)).toBeNull();
  });
});

describe('a server that exits before it answers initialize', () => {
  it('records what it said on stderr with the task outcome', async () => {
    const h = await harnessWith(
      'refuses.mjs',
      "console.error('no store: the database went away');\nprocess.exit(2);\n",
      { git: { command: process.execPath, args: ['refuses.mjs'] } },
    );
    const thrown = await thrownBy(
      runTask({ loaded: h.loaded, store: h.store, env: process.env, task: spec() }),
    );
    expect([thrown?.code, thrown?.message, thrown?.hint]).toEqual([
      'UNAVAILABLE',
      "server 'git' did not start: Connection closed",
      'its stderr ends with:\nno store: the database went away',
    ]);
    const [stopped] = await h.store.listTasks({});
    expect([stopped?.status, stopped?.run?.outcome.message]).toEqual([
      'error',
      "server 'git' did not start: Connection closed; its stderr ends with:\nno store: the database went away",
    ]);
    expect(await h.store.getOwner(stopped!.id)).toBeNull();
  });
});

// The deploy server is asked for its environments while the starting state is read: one that dies
// there ends the run as a failed start-up once the start's own writes settled, never beside them.
const diesListingEnvironments = rawServerScript({
  name: 'dies-listing-environments',
  tools: [{ name: 'list_environments', inputSchema: { type: 'object' } }],
  onCall: '() => process.exit(3)',
});

describe('a deploy server that dies listing its environments at the start', () => {
  it('ends the task error, recorded after the start, its owner released', async () => {
    const h = await harnessWith('dies.mjs', diesListingEnvironments, {
      git: builtinServers.git,
      deploy: { command: process.execPath, args: ['dies.mjs'] },
    });
    const thrown = await thrownBy(
      runTask({ loaded: h.loaded, store: h.store, env: process.env, task: spec() }),
    );
    const [stopped] = await h.store.listTasks({});
    const message = `the task's start-up failed: Connection closed; keel resume ${stopped!.id} starts its servers again`;
    expect([thrown?.code, thrown?.message]).toEqual(['UNAVAILABLE', `task ${stopped!.id}: ${message}`]);
    expect([stopped?.status, stopped?.run?.outcome.message]).toEqual(['error', message]);
    // The start was recorded (the git server answered) before the end, which is the last event.
    expect((await h.store.listEvents(stopped!.id)).map((e) => e.type)).toEqual([
      'task_started',
      'task_finished',
    ]);
    expect(await h.store.getOwner(stopped!.id)).toBeNull();
    expect(await h.store.listModelCalls(stopped!.id)).toEqual([]);
  });
});
