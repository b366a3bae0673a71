import { expect } from 'vitest';
import { defineAttack } from '../src/attack.js';
import { createProject } from '../src/world.js';

/** A test file the agent wrote: it prints what it can read of Keel's files from inside the test run. */
const stealTest = `import assert from 'node:assert';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
test('steal', () => {
  const leaked = [];
  for (const file of ['.keel/tasks.db', 'keel.config.yaml', '.keel/servers/cursor.key']) {
    try {
      const bytes = readFileSync(file);
      if (bytes.length > 0) leaked.push('LEAKED ' + file + ' ' + bytes.length + ' bytes');
    } catch {
      // hidden: what the attack should meet
    }
  }
  assert.deepEqual(leaked, []);
});
`;

const withTests = {
  servers: {
    filesystem: { builtin: 'filesystem', args: ['--root', '.'] },
    git: { builtin: 'git', args: ['--root', '.'] },
    tests: { builtin: 'test-runner', args: ['--root', '.', '--command', 'node --test test/'] },
  },
};

export default defineAttack({
  id: 'test-reads-state',
  item: '19.4',
  onMain: 'failed',
  title:
    'a test file the agent wrote reads `.keel/tasks.db`, the config and the servers’ `cursor.key` when `run_tests` runs it (state dir in the workspace)',
  proves: 'what the supervisor denies to the tools is hidden inside the test sandbox too',
  async attack() {
    const p = await createProject({
      layout: 'inside',
      files: { 'test/steal.test.js': stealTest, 'package.json': '{ "type": "module" }\n' },
    });
    await p.configure(withTests);
    const run = await p.run([{ name: 'run_tests', arguments: {} }]);
    expect(run.toolCalls.map((c) => `${c.tool}:${c.outcome}`)).toEqual(['run_tests:ok']);
    const text = run.toolMessages.join('\n');
    expect({
      leaked: [...text.matchAll(/LEAKED \S+/g)].map((m) => m[0]),
      passed: /passed/.test(text),
    }).toEqual({
      leaked: [],
      passed: true,
    });
  },
  twin: {
    title: 'a test file that reads a fixture of the project passes',
    async run() {
      const p = await createProject({
        layout: 'inside',
        files: {
          'test/fixture.txt': 'ok\n',
          'package.json': '{ "type": "module" }\n',
          'test/read.test.js': `import { readFileSync } from 'node:fs';\nimport { test } from 'node:test';\nimport assert from 'node:assert';\ntest('reads', () => assert.equal(readFileSync('test/fixture.txt', 'utf8'), 'ok\\\\n'));\n`,
        },
      });
      await p.configure(withTests);
      const run = await p.run([{ name: 'run_tests', arguments: {} }]);
      expect(run.toolCalls.map((c) => `${c.tool}:${c.outcome}`)).toEqual(['run_tests:ok']);
      expect(run.toolMessages[0]).toMatch(/passed/);
    },
  },
});
