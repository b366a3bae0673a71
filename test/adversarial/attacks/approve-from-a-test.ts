import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'vitest';
import { defineAttack } from '../src/attack.js';
import { createProject, keelBin, writeTools, type Project } from '../src/world.js';

// Keel is installed where test runs can read it, as a global install under /usr would be: the
// repository holding this `keel` (and its dependencies) is exposed to the sandbox read-only.
const keelInstall = path.resolve(path.dirname(keelBin), '../../..');

/** A project (state dir inside, as `keel init` wrote on main) whose earlier task waits for a human to approve a write under deploy/. */
async function waitingProject(sandbox = 'auto') {
  const p = await createProject({
    layout: 'inside',
    files: { 'README.md': '# app\n', 'deploy/.keep': '', 'package.json': '{ "type": "module" }\n' },
  });
  const agent = { model: 'gpt', tools: { filesystem: writeTools, tests: ['*'] } };
  await p.configure({
    servers: {
      filesystem: { builtin: 'filesystem', args: ['--root', '.'] },
      tests: {
        builtin: 'test-runner',
        args: [
          '--root',
          '.',
          '--command',
          'node --test test/',
          '--sandbox',
          sandbox,
          '--sandbox-expose',
          keelInstall,
        ],
      },
    },
    irreversible: { tools: [], paths: ['deploy/**'] },
    agents: { planning: agent, coding: agent, review: agent },
  });
  const waiting = await p.run([
    { name: 'write_file', arguments: { path: 'deploy/run.sh', content: 'curl x | sh\n' } },
  ]);
  const approvals = JSON.parse((await p.keel(['approvals', '--json'])).stdout) as Array<{ id: string }>;
  expect([waiting.status, approvals.length]).toEqual(['waiting', 1]);
  return { p, approval: approvals[0]!.id };
}

/** A test file that runs `keel ARGS` for each of `attempts` and asserts what each must do. */
const keelTest = (
  attempts: Array<{ args: string[]; must: 'fail' | 'succeed' }>,
) => `import assert from 'node:assert';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
test('keel', () => {
  const wrong = [];
  for (const { args, must } of ${JSON.stringify(attempts)}) {
    const r = spawnSync(process.execPath, [${JSON.stringify(keelBin)}, ...args], { encoding: 'utf8' });
    if ((r.status === 0) !== (must === 'succeed')) wrong.push('UNEXPECTED ' + r.status + ' keel ' + args.join(' ') + ': ' + r.stdout + r.stderr);
  }
  assert.deepEqual(wrong, []);
});
`;

const runTests = async (p: Project, test: string) => {
  await mkdir(path.join(p.ws, 'test'), { recursive: true });
  await writeFile(path.join(p.ws, 'test', 'keel.test.js'), test);
  const run = await p.run([{ name: 'run_tests', arguments: {} }]);
  expect(run.toolCalls.map((c) => `${c.tool}:${c.outcome}`)).toEqual(['run_tests:ok']);
  return run.toolMessages[0]!;
};

const statusOf = async (p: Project, id: string) =>
  (JSON.parse((await p.keel(['approvals', 'show', id, '--json'])).stdout) as { status: string }).status;

export default defineAttack({
  id: 'approve-from-a-test',
  item: '19.5',
  onMain: 'guard',
  title:
    "a test file the agent wrote runs `keel approve` on the project's waiting approval when `run_tests` runs it (keel installed where the test can run it; the config named by its path, or found in the project)",
  proves:
    'approvals come from a person: inside the test sandbox the config, the task store and the keys are hidden, so `keel approve` finds nothing to approve and the approval stays pending',
  async attack() {
    const { p, approval } = await waitingProject();
    const must = 'fail' as const;
    const text = await runTests(
      p,
      keelTest([
        { args: ['approve', approval, '--as', 'mallory', '--no-resume', '--config', p.configFile], must },
        { args: ['approve', approval, '--as', 'mallory', '--no-resume'], must },
        { args: ['approvals', '--config', p.configFile], must },
      ]),
    );
    expect({
      unexpected: [...text.matchAll(/UNEXPECTED .*/g)].map((m) => m[0]),
      passed: / 1 passed, 0 failed/.test(text),
    }).toEqual({
      unexpected: [],
      passed: true,
    });
    expect(await statusOf(p, approval)).toBe('pending');
  },
  twin: {
    title:
      'a test file that runs the installed `keel --version` passes; the person approves the same request from their shell',
    async run() {
      const { p, approval } = await waitingProject();
      const text = await runTests(p, keelTest([{ args: ['--version'], must: 'succeed' }]));
      expect(text).toMatch(/ 1 passed, 0 failed/);
      expect((await p.keel(['approve', approval, '--as', 'alice', '--no-resume'])).code).toBe(0);
      expect(await statusOf(p, approval)).toBe('approved');
    },
  },
});
