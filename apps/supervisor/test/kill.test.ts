import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { createHarness, type Harness } from './helpers.js';
import {
  printedKeel,
  below,
  keel,
  present,
  processesIn,
  reapAfter,
  startKeel,
  until,
  type KeelProcess,
  type Proc,
} from './processes.js';

/**
 * A project whose only test sleeps for ten minutes, a config whose only server is the test-runner,
 * and a task whose coding agent (the playbook) runs the tests: a `keel run` of it sits inside a
 * long tool call until it is killed.
 */
async function sleepyHarness(): Promise<Harness> {
  const tools = { tests: ['run_tests'] };
  const h = await createHarness({
    files: {
      'package.json': `${JSON.stringify({ name: 'sleepy', private: true, type: 'module', scripts: { test: 'node --test' } })}\n`,
      'test/sleep.test.mjs':
        "import { test } from 'node:test';\n\ntest('sleeps for ten minutes', async () => {\n  await new Promise((resolve) => setTimeout(resolve, 600_000));\n});\n",
    },
    config: {
      servers: { tests: { builtin: 'test-runner', args: ['--root', '.'] } },
      agents: {
        planning: { model: 'playbook', tools },
        coding: { model: 'playbook', tools },
        review: { model: 'playbook', tools },
      },
    },
  });
  reapAfter(h.dir);
  await writeFile(
    path.join(h.dir, 'sleep.task.yaml'),
    stringify({
      type: 'sleep',
      title: 'Run the sleeping test',
      description: 'Run the tests.',
      mode: 'single',
      tests: null,
      deploy: null,
      playbook: {
        coding: [
          [
            { call: 'run_tests', args: { fresh: true } },
            { submit: { version: 'change.v1', summary: 'nothing', files: [], commit: null } },
          ],
        ],
      },
    }),
  );
  return h;
}

const isSleeper = (p: Proc) => p.cmdline.includes('sleep.test.mjs');

/** Waits until every keel process has the sleeping test below it; returns each one's whole tree then. */
async function whenSleeping(keels: KeelProcess[]): Promise<Proc[][]> {
  return until(`${keels.length} sleeping tests`, () => {
    const trees = keels.map((k) => below(k.pid));
    return trees.every((tree) => tree.some(isSleeper)) ? trees : undefined;
  });
}

/** The tasks each keel process runs, by the owner pid its lease names. */
async function taskIdsOf(h: Harness, keels: KeelProcess[]): Promise<string[]> {
  const running = await h.store.listTasks({ status: 'running', limit: 100 });
  const byPid = new Map<number, string>();
  for (const task of running) {
    const owner = await h.store.getOwner(task.id);
    if (owner !== null) byPid.set(owner.pid, task.id);
  }
  return keels.map((k) => byPid.get(k.pid)!);
}

/** What `keel kill` prints for a task it stopped: acknowledged by its process, or forced. */
const killedLine = (id: string, pid: number) =>
  new RegExp(
    `^${id}: killed \\((its process ${pid} stopped it|process ${pid} did not answer; killed the task's \\d+ process\\(es\\), not the process itself), \\d+ ms\\)$`,
  );

/** The shape of one keel process's tree while its test sleeps: server, `node --test`, the test file. */
const shapeOf = (keelPid: number, tree: Proc[]) =>
  tree.map((p) => ({
    parent: p.ppid === keelPid ? 'keel' : tree.find((q) => q.pid === p.ppid) === undefined ? '?' : 'below',
    ownGroup: p.pgid === p.pid,
    role: isSleeper(p)
      ? 'test file'
      : p.cmdline.includes(' --test ')
        ? 'node --test'
        : p.cmdline.includes('test-runner/bin/keel-test-runner.js')
          ? 'server'
          : p.cmdline,
  }));

const expectedShape = [
  { parent: 'keel', ownGroup: false, role: 'server' },
  // bwrap leads the run's process group; its init and the test runner run below it, in the sandbox.
  { parent: 'below', ownGroup: true, role: 'node --test' },
  { parent: 'below', ownGroup: false, role: 'node --test' },
  { parent: 'below', ownGroup: false, role: 'node --test' },
  { parent: 'below', ownGroup: false, role: 'test file' },
];

describe('keel kill', () => {
  it('--all stops ten tasks inside long tool calls: every task killed, every process below them gone, new runs refused until resume-all', async () => {
    const h = await sleepyHarness();
    const keels = Array.from({ length: 10 }, () => startKeel(['run', 'sleep.task.yaml', '--quiet'], h.dir));
    const trees = await whenSleeping(keels);
    // Each tree is the server, the sandbox leading its own process group, the test runner, and the sleeping test.
    expect(trees.map((tree, i) => shapeOf(keels[i]!.pid, tree))).toEqual(Array(10).fill(expectedShape));
    const ids = await taskIdsOf(h, keels);
    expect(new Set(ids).size).toBe(10);
    const everyBelow = trees.flat();

    const killed = await keel(['kill', '--all', '--as', 'tester'], h.dir);
    expect(killed.stderr).toBe('');
    expect(killed.code).toBe(0);
    const lines = killed.stdout.trimEnd().split('\n');
    expect(lines.at(-1)).toBe(
      `global stop in force: no task starts until \`${printedKeel} resume-all\` (10 task(s) stopped)`,
    );
    expect(lines.length).toBe(11);
    for (const [i, id] of ids.entries())
      expect(lines.filter((line) => killedLine(id, keels[i]!.pid).test(line))).toHaveLength(1);

    // Every keel process exits: a killed task is a task that did not succeed.
    const exits = await Promise.all(keels.map((k) => k.exited));
    expect(exits).toEqual(Array(10).fill({ code: 1, signal: null }));
    const tasks = await Promise.all(ids.map((id) => h.store.getTask(id)));
    expect(tasks.map((t) => [t?.status, t?.endedAt === null])).toEqual(Array(10).fill(['killed', false]));
    for (const id of ids)
      expect(
        (await h.store.listEvents(id)).filter((e) => e.type === 'task_finished').map((e) => e.data),
      ).toEqual([expect.objectContaining({ status: 'killed' })]);

    // Nothing that ran below them is left: not the servers, not the test runners in their own
    // groups, not the sleeping tests — by the pids seen before the kill, and by working directory.
    const left = await until('every process below the killed tasks to leave /proc', () => {
      const still = [...everyBelow.filter(present), ...processesIn(h.dir)];
      return still.length === 0 ? still : undefined;
    });
    expect(left).toEqual([]);

    // The global stop refuses a new task, and names itself.
    const stop = await h.store.getGlobalStop();
    expect(stop?.by).toBe('tester');
    const refused = await keel(['run', 'sleep.task.yaml', '--quiet'], h.dir);
    expect(refused).toEqual({
      code: 2,
      stdout: '',
      stderr: `keel: a global stop is in force (since ${stop!.at}, by tester): no task starts\nhint: ${printedKeel} resume-all lifts it\n`,
    });
    expect((await h.store.listTasks({ limit: 100 })).length).toBe(10);

    const lifted = await keel(['resume-all'], h.dir);
    expect(lifted).toEqual({
      code: 0,
      stdout: `global stop lifted (set by tester at ${stop!.at})\n`,
      stderr: '',
    });
    expect(await h.store.getGlobalStop()).toBe(null);

    // Tasks start again; `keel kill TASK` stops exactly one of them.
    const pair = [
      startKeel(['run', 'sleep.task.yaml', '--quiet'], h.dir),
      startKeel(['run', 'sleep.task.yaml', '--quiet'], h.dir),
    ];
    const [treeA, treeB] = await whenSleeping(pair);
    const [a, b] = await taskIdsOf(h, pair);
    const one = await keel(['kill', a!, '--as', 'tester'], h.dir);
    expect(one.code).toBe(0);
    expect(one.stdout.trimEnd()).toMatch(killedLine(a!, pair[0]!.pid));
    expect(one.stdout.split('\n')).toHaveLength(2);
    expect(await pair[0]!.exited).toEqual({ code: 1, signal: null });
    expect(await until("task A's processes to go", () => (treeA!.some(present) ? undefined : true))).toBe(
      true,
    );
    // The other task runs on, its test still sleeping.
    expect((await h.store.getTask(a!))?.status).toBe('killed');
    expect((await h.store.getTask(b!))?.status).toBe('running');
    expect(treeB!.map(present)).toEqual(Array(expectedShape.length).fill(true));
    expect(pair[1]!.child.exitCode).toBe(null);
    expect(await h.store.getGlobalStop()).toBe(null);

    const other = await keel(['kill', b!], h.dir);
    expect(other.stdout.trimEnd()).toMatch(killedLine(b!, pair[1]!.pid));
    expect(await pair[1]!.exited).toEqual({ code: 1, signal: null });
    expect((await h.store.getTask(b!))?.status).toBe('killed');
    expect(
      await until('every process to go', () => {
        const still = [...treeB!.filter(present), ...processesIn(h.dir)];
        return still.length === 0 ? still : undefined;
      }),
    ).toEqual([]);
    // Killing an ended task says so and changes nothing.
    expect(await keel(['kill', a!], h.dir)).toEqual({
      code: 0,
      stdout: `${a}: already ended (killed)\n`,
      stderr: '',
    });
  }, 300_000);
});
