import { describe, expect, it } from 'vitest';
import { git } from '@keel/testing';
import { runTask } from '../src/engine/runTask.js';
import { createHarness, task } from './helpers.js';

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
});
