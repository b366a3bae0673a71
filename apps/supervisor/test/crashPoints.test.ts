import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { createHarness } from './helpers.js';
import { keel, reapAfter } from './processes.js';

const taskFile = {
  type: 'crash',
  title: 'write a note',
  description: 'write a note',
  mode: 'single',
  deploy: null,
  tests: null,
  playbook: {
    coding: [
      [
        { call: 'write_file', args: { path: 'note.txt', content: 'n\n' } },
        { submit: { version: 'change.v1', summary: 'a note', files: [], commit: null } },
      ],
    ],
  },
};

describe('KEEL_CRASH_AT in the supervisor', () => {
  it('supervisor.after-model-recorded: dies with the first reply recorded and no tool call started; resume finishes from there', async () => {
    const h = await createHarness({});
    reapAfter(h.dir);
    const file = path.join(h.dir, 'crash.task.yaml');
    await writeFile(file, stringify(taskFile));
    const crashed = await keel(['run', file, '--quiet'], h.dir, {
      KEEL_CRASH_AT: 'supervisor.after-model-recorded',
    });
    expect(crashed.code).toBe(null);
    expect(crashed.stderr.trim().split('\n').at(-1)).toBe(
      'keel: crash point reached: SIGKILL (KEEL_CRASH_AT=supervisor.after-model-recorded)',
    );
    const [task] = await h.store.listTasks();
    expect(task?.status).toBe('running');
    expect((await h.store.listModelCalls(task!.id)).map((c) => [c.step, c.attempt, c.error])).toEqual([
      [1, 1, null],
    ]);
    expect(await h.store.listToolCalls(task!.id)).toEqual([]);

    const resumed = await keel(['resume', task!.id, '--quiet'], h.dir);
    expect(resumed.code).toBe(0);
    expect((await h.store.getTask(task!.id))?.status).toBe('succeeded');
    expect((await h.store.listModelCalls(task!.id)).map((c) => [c.step, c.attempt])).toEqual([
      [1, 1],
      [2, 1],
    ]);
    expect((await h.store.listToolCalls(task!.id)).map((c) => [c.step, c.tool, c.outcome])).toEqual([
      [1, 'write_file', 'ok'],
    ]);
  });

  it('an unknown supervisor crash point is refused before anything runs', async () => {
    const h = await createHarness({});
    const file = path.join(h.dir, 'crash.task.yaml');
    await writeFile(file, stringify(taskFile));
    const refused = await keel(['run', file, '--quiet'], h.dir, { KEEL_CRASH_AT: 'supervisor.nowhere' });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toBe(
      "keel: KEEL_CRASH_AT='supervisor.nowhere' is not a crash point of keel\nhint: crash points: supervisor.after-claim, supervisor.after-model-recorded, supervisor.after-tool-recorded\n",
    );
    expect(await h.store.listTasks()).toEqual([]);
  });
});
