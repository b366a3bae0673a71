import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { builtinServers, createHarness } from './helpers.js';
import { below, keel, processesIn, reapAfter, startKeel, until } from './processes.js';

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

  it('a task whose servers are still starting when kill --all runs: found (`starting`), its start-up stopped, ended killed, nothing left running', async () => {
    // A server that never answers MCP's initialize: the task's start-up waits on it until it is stopped.
    const silent = 'process.stdin.resume();\n';
    const h = await createHarness({
      files: { 'README.md': '# ws\n', 'silent-server.mjs': silent },
      config: {
        servers: { ...builtinServers, silent: { command: process.execPath, args: ['silent-server.mjs'] } },
      },
    });
    reapAfter(h.dir);
    const file = path.join(h.dir, 'start.task.yaml');
    await writeFile(
      file,
      stringify({
        type: 'start',
        title: 'write',
        description: 'write',
        mode: 'single',
        deploy: null,
        tests: null,
        playbook: {
          coding: [
            [
              { call: 'write_file', args: { path: 'after.txt', content: 'after\n' } },
              { submit: { version: 'change.v1', summary: 'done', files: [], commit: null } },
            ],
          ],
        },
      }),
    );
    const run = startKeel(['run', file, '--quiet'], h.dir);
    // The row is there, claimed, while the servers start: before, it was written once they all had.
    const [starting] = await until('the task row while its servers start', async () => {
      const tasks = await h.store.listTasks();
      const silentUp = below(run.pid).some((p) => p.cmdline.includes('silent-server.mjs'));
      return tasks.length === 1 && silentUp ? tasks : undefined;
    });
    expect(starting!.status).toBe('starting');
    expect((await h.store.getOwner(starting!.id))?.pid).toBe(run.pid);

    // The graceful path is what this checks, not its speed: a loaded machine gets 10 s to answer.
    const killed = await keel(['kill', '--all', '--as', 'ops', '--ack-ms', '10000'], h.dir);
    expect([killed.code, killed.stderr]).toEqual([0, '']);
    // The run heard the kill while it started its servers, stopped the start-up and released the task.
    expect(killed.stdout.split('\n')[0]).toMatch(
      new RegExp(`^${starting!.id}: killed \\(its process ${run.pid} stopped it, \\d+ ms\\)$`),
    );
    expect(killed.stdout).toContain('(1 task(s) stopped)');
    expect((await run.exited).code).toBe(1);
    const task = await h.store.getTask(starting!.id);
    // Recorded by the kill, as for a queued task: it ended before a first step, so no run summary.
    expect([task?.status, task?.run]).toEqual(['killed', null]);
    expect((await h.store.listEvents(task!.id)).map((e) => e.type)).toEqual(['task_finished']);
    expect(await h.store.listToolCalls(task!.id)).toEqual([]);
    expect(await h.store.listModelCalls(task!.id)).toEqual([]);
    expect(existsSync(path.join(h.repo.dir, 'after.txt'))).toBe(false);
    // The silent server was closed with the start-up; nothing of the run is left.
    expect(processesIn(h.dir).filter((p) => p.state !== 'Z')).toEqual([]);
  });
});
