import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { createHarness } from './helpers.js';
import { below, keel, reapAfter, startKeel, until } from './processes.js';

const sleeper = `import { test } from 'node:test';\n\ntest('sleeps 4 s', async () => {\n  await new Promise((resolve) => setTimeout(resolve, 4000));\n});\n`;

describe('a stdio server that dies mid-call', () => {
  it('stops the task resumable; keel resume starts the server again and sends the call again under the same key', async () => {
    const h = await createHarness({
      files: {
        'package.json': `${JSON.stringify({ name: 'd', private: true, type: 'module', scripts: { test: 'node --test' } })}\n`,
        'test/sleep.test.mjs': sleeper,
      },
    });
    reapAfter(h.dir);
    const file = path.join(h.dir, 'death.task.yaml');
    await writeFile(
      file,
      stringify({
        type: 'death',
        title: 'run the tests',
        description: 'run the tests',
        mode: 'single',
        deploy: null,
        tests: null,
        playbook: {
          coding: [
            [
              { call: 'run_tests', args: { files: ['test/sleep.test.mjs'] } },
              { submit: { version: 'change.v1', summary: 'tested', files: [], commit: null } },
            ],
          ],
        },
      }),
    );
    const run = startKeel(['run', file, '--quiet'], h.dir);
    const server = await until('the test-runner server to be running the sleeping test', () => {
      const tree = below(run.pid);
      const runner = tree.find((p) => p.ppid === run.pid && p.cmdline.includes('keel-test-runner'));
      return runner !== undefined && tree.some((p) => p.cmdline.includes('sleep.test.mjs'))
        ? runner
        : undefined;
    });
    process.kill(server.pid, 'SIGKILL');
    expect((await run.exited).code).toBe(1);
    const [task] = await h.store.listTasks();
    expect(task?.status).toBe('error');
    expect(task?.run?.outcome.message).toMatch(
      new RegExp(
        `^server 'tests' died during run_tests \\(.*\\): keel resume ${task!.id} starts it again and sends the call again under the same idempotency key$`,
      ),
    );
    const first = await h.store.listToolCalls(task!.id);
    expect(first.map((c) => [c.step, c.callIndex, c.tool, c.errorCode])).toEqual([
      [1, 0, 'run_tests', 'SERVER_GONE'],
    ]);

    const resumed = await keel(['resume', task!.id, '--quiet'], h.dir);
    expect(resumed.code).toBe(0);
    expect((await h.store.getTask(task!.id))?.status).toBe('succeeded');
    const calls = await h.store.listToolCalls(task!.id);
    expect(calls.map((c) => [c.step, c.callIndex, c.tool, c.outcome, c.errorCode])).toEqual([
      [1, 0, 'run_tests', 'error', 'SERVER_GONE'],
      [1, 0, 'run_tests', 'ok', null],
    ]);
    expect(calls[1]!.idempotencyKey).toBe(calls[0]!.idempotencyKey);
  });
});
