import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { git } from '@keel/testing';
import { runTask } from '../src/engine/runTask.js';
import { createReplayModel } from '../src/models/replay.js';
import { createHarness, task, type Harness } from './helpers.js';

describe('playbook flow', () => {
  it('single mode: a coding agent edits, commits and hands in change.v1; the orchestrator runs the tests', async () => {
    const h = await createHarness({
      files: {
        'package.json': JSON.stringify({ name: 'x', type: 'module', scripts: { test: 'node --test' } }),
        'lib.js': 'export const two = () => 3;\n',
        'lib.test.js':
          "import { test } from 'node:test';\nimport assert from 'node:assert';\nimport { two } from './lib.js';\ntest('two', () => assert.equal(two(), 2));\n",
      },
    });
    const { run, flow } = await runTask({
      loaded: h.loaded,
      store: h.store,
      env: process.env,
      task: task({
        mode: 'single',
        playbook: {
          coding: [
            [
              { call: 'edit_file', args: { path: 'lib.js', edits: [{ oldText: '=> 3', newText: '=> 2' }] } },
              { call: 'git_commit', args: { message: 'two() returns 2', all: true } },
              {
                submit: {
                  version: 'change.v1',
                  summary: 'two is 2',
                  files: [{ path: 'lib.js', status: 'modified', linesAdded: 1, linesRemoved: 1 }],
                  commit: { sha: '{{git_commit.sha}}', message: 'two() returns 2' },
                },
              },
            ],
          ],
        },
      }),
    });
    expect(run.outcome.message).toBe('1 coding round(s), tests passed (1/1), no deploy');
    expect(run.status).toBe('succeeded');
    expect(run.outcome.message).toBe('1 coding round(s), tests passed (1/1), no deploy');
    expect(run.toolCalls.map((c) => `${c.server}.${c.tool}:${c.ok}`)).toEqual([
      'tests.detect_projects:true',
      'filesystem.edit_file:true',
      'git.git_commit:true',
      'tests.run_tests:true',
    ]);
    const head = (await git(h.repo.dir, ['rev-parse', 'HEAD'])).trim();
    expect(flow.change?.commit?.sha).toBe(head);
    expect(flow.tests.map((t) => [t.outcome, t.totals])).toEqual([
      ['passed', { total: 1, passed: 1, failed: 0, skipped: 0 }],
    ]);
  });

  it('a recorded run replays with no model call: same tool calls, same arguments, same outcome', async () => {
    const files = { 'notes.md': 'one\n' };
    const spec = task({
      mode: 'single',
      tests: null,
      playbook: {
        coding: [
          [
            { call: 'read_file', args: { path: 'notes.md' } },
            {
              call: 'write_file',
              args: { path: 'notes.md', content: 'one\ntwo\n', token: 'sk-abcdefghijklmnopqrstuvwx' },
            },
            { call: 'git_commit', args: { message: 'two', all: true } },
            {
              submit: {
                version: 'change.v1',
                summary: 'two',
                files: [{ path: 'notes.md', status: 'modified', linesAdded: 1, linesRemoved: 0 }],
                commit: { sha: '{{git_commit.sha}}', message: 'two' },
              },
            },
          ],
        ],
      },
    });
    const first = await createHarness({ files });
    const recorded = await runTask({
      loaded: first.loaded,
      store: first.store,
      env: process.env,
      task: spec,
    });
    expect(recorded.run.status).toBe('succeeded');
    const models = await first.store.listModelCalls(recorded.run.id);
    const tools = await first.store.listToolCalls(recorded.run.id);
    // Secrets are redacted in the record, whatever the tool made of them.
    expect(tools[1]?.arguments).toEqual({ path: 'notes.md', content: 'one\ntwo\n', token: '[REDACTED]' });

    const second = await createHarness({ files });
    const replayed = await runTask({
      loaded: second.loaded,
      store: second.store,
      env: process.env,
      task: spec,
      models: { playbook: createReplayModel(models) },
    });
    expect(replayed.run.status).toBe('succeeded');
    expect(replayed.run.steps).toBe(recorded.run.steps);
    const again = await second.store.listToolCalls(replayed.run.id);
    expect(again.map((c) => [c.tool, c.arguments, c.outcome])).toEqual(
      tools.map((c) => [c.tool, c.arguments, c.outcome]),
    );
    expect((await second.store.listModelCalls(replayed.run.id)).map((c) => c.provider)).toEqual(
      models.map(() => 'replay'),
    );

    // A recording that ends early is a divergence, never an invented answer.
    const third = await createHarness({ files });
    const short = await runTask({
      loaded: third.loaded,
      store: third.store,
      env: process.env,
      task: spec,
      models: { playbook: createReplayModel(models.slice(0, 2)) },
    });
    expect([short.run.status, short.run.outcome.message]).toEqual([
      'error',
      'model call failed (replay:replay): replay diverged at step 3: the recording has no model call there',
    ]);
  });

  it('policy may make writes to some paths irreversible: the call waits for a human and nothing is written', async () => {
    const h = await createHarness({ config: { irreversible: { paths: ['migrations/**'] } } });
    const { run } = await runTask({
      loaded: h.loaded,
      store: h.store,
      env: process.env,
      task: task({
        mode: 'single',
        tests: null,
        playbook: {
          coding: [
            [
              { call: 'write_file', args: { path: 'notes.md', content: 'fine\n' } },
              {
                call: 'write_file',
                args: { path: 'migrations/001.sql', content: 'DROP TABLE users;\n', createParents: true },
              },
            ],
          ],
        },
      }),
    });
    expect(run.status).toBe('waiting');
    expect(run.outcome.message).toMatch(
      /^waiting for approval ap-[0-9a-f]{10}: filesystem\.write_file \{"path":"migrations\/001\.sql","content":"DROP TABLE users;\\n","createParents":true\} — write_file would change migrations\/001\.sql \(irreversible\.paths\); policy: irreversible actions need a human$/,
    );
    expect(existsSync(path.join(h.repo.dir, 'notes.md'))).toBe(true);
    expect(existsSync(path.join(h.repo.dir, 'migrations'))).toBe(false);
  });
  it('a task whose tests cannot be found ends before any model call, saying why', async () => {
    const coding = [[{ call: 'write_file', args: { path: 'x.txt', content: 'x\n' } }]];
    const run = async (h: Harness, tests: Record<string, unknown> = {}) =>
      (
        await runTask({
          loaded: h.loaded,
          store: h.store,
          env: process.env,
          task: task({ mode: 'single', tests, playbook: { coding } }),
        })
      ).run;
    const cannot = 'the task needs tests, and they cannot be run: ';
    const noTests = await createHarness({ files: { 'README.md': '# no tests here\n' } });
    const none = await run(noTests);
    expect([none.status, none.outcome.message, none.steps]).toEqual([
      'error',
      `${cannot}no test project was found in the workspace (add a test script, a framework config or a declared --command to the test-runner; or set tests: null in the task file)`,
      0,
    ]);
    expect(none.toolCalls.map((c) => `${c.server}.${c.tool}:${c.ok}`)).toEqual([
      'tests.detect_projects:true',
    ]);
    expect(await noTests.store.listModelCalls(none.id)).toEqual([]);
    expect(existsSync(path.join(noTests.repo.dir, 'x.txt'))).toBe(false);

    const node = (name: string) =>
      JSON.stringify({ name, private: true, type: 'module', scripts: { test: 'node --test' } });
    const two = await createHarness({ files: { 'a/package.json': node('a'), 'b/package.json': node('b') } });
    const ended = (r: Awaited<ReturnType<typeof run>>) => [r.status, r.outcome.message, r.steps];
    expect(ended(await run(two))).toEqual([
      'error',
      `${cannot}2 test projects were found; name one as tests.project in the task file: a:node-test, b:node-test`,
      0,
    ]);
    expect(ended(await run(two, { project: 'c' }))).toEqual([
      'error',
      `${cannot}project 'c' was not found (Pass a project id, its directory (relative or absolute inside the roots) or a unique directory name. Known projects: a:node-test, b:node-test (detect_projects lists them).)`,
      0,
    ]);
  });
});
