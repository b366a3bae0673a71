import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { createHarness } from './helpers.js';
import { below, reapAfter, startKeel, until } from './processes.js';

const sleeper = `import { test } from 'node:test';\n\ntest('sleeps 4 s', async () => {\n  await new Promise((resolve) => setTimeout(resolve, 4000));\n});\n`;

describe('the global stop, checked before every call', () => {
  it('a task running when the stop is set (and not killed, as one kill --all missed) stops before its next call', async () => {
    const h = await createHarness({
      files: {
        'package.json': `${JSON.stringify({ name: 'g', private: true, type: 'module', scripts: { test: 'node --test' } })}\n`,
        'test/sleep.test.mjs': sleeper,
      },
    });
    reapAfter(h.dir);
    const file = path.join(h.dir, 'stop.task.yaml');
    await writeFile(
      file,
      stringify({
        type: 'stop',
        title: 'test, then write',
        description: 'test, then write',
        mode: 'single',
        deploy: null,
        tests: null,
        playbook: {
          coding: [
            [
              { call: 'run_tests', args: { files: ['test/sleep.test.mjs'] } },
              { call: 'write_file', args: { path: 'after.txt', content: 'after\n' } },
              { submit: { version: 'change.v1', summary: 'done', files: [], commit: null } },
            ],
          ],
        },
      }),
    );
    const run = startKeel(['run', file, '--quiet'], h.dir);
    await until('the task to be inside its test run', () =>
      below(run.pid).some((p) => p.cmdline.includes('sleep.test.mjs')) ? true : undefined,
    );
    const at = new Date().toISOString();
    await h.store.setGlobalStop({ by: 'ops', at });
    expect((await run.exited).code).toBe(1);
    const [task] = await h.store.listTasks();
    expect([task?.status, task?.run?.outcome.message]).toEqual([
      'killed',
      `a global stop is in force (since ${at}, by ops): the task stopped before its next call`,
    ]);
    expect((await h.store.listToolCalls(task!.id)).map((c) => c.tool)).toEqual(['run_tests']);
    expect(existsSync(path.join(h.repo.dir, 'after.txt'))).toBe(false);
  });
});
