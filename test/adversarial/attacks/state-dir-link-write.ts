import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import { defineAttack } from '../src/attack.js';
import { createProject, writeTools } from '../src/world.js';

/** A test file that makes links in the project (the roots are writable inside the test sandbox). */
const linkTest = (links: Record<string, string>) => `import { symlinkSync } from 'node:fs';
import { test } from 'node:test';
test('links', () => {
  for (const [link, target] of Object.entries(${JSON.stringify(links)})) symlinkSync(target, link);
});
`;

/** The state dir inside the workspace (what `keel init` wrote on main); the agent has the filesystem tools and `run_tests`. */
async function project(links: Record<string, string>) {
  const p = await createProject({
    layout: 'inside',
    files: {
      'README.md': '# app\n',
      'docs/guide.md': 'guide\n',
      'package.json': '{ "type": "module" }\n',
      'test/links.test.js': linkTest(links),
    },
  });
  const agent = { model: 'gpt', tools: { filesystem: writeTools, tests: ['*'] } };
  await p.configure({
    servers: {
      filesystem: { builtin: 'filesystem', args: ['--root', '.'] },
      tests: { builtin: 'test-runner', args: ['--root', '.', '--command', 'node --test test/'] },
    },
    agents: { planning: agent, coding: agent, review: agent },
  });
  return p;
}

export default defineAttack({
  id: 'state-dir-link-write',
  item: '19.4',
  onMain: 'guard',
  title:
    'the agent makes links to the state dir (`k -> .keel`, `s -> .keel/servers`) with a test file `run_tests` runs, then writes through them: a file into `.keel`, a new `cursor.key`, a directory in `.keel`',
  proves:
    'a write is checked on the real path it lands on, whoever made the link: every write through a link into the state dir is refused and the store and keys are unchanged',
  async attack() {
    const p = await project({ k: '.keel', s: '.keel/servers' });
    const run = await p.run(
      [
        { name: 'run_tests', arguments: {} },
        { name: 'write_file', arguments: { path: 'k/evil.txt', content: 'x' } },
        { name: 'write_file', arguments: { path: 's/cursor.key', content: 'attacker-chosen' } },
        { name: 'edit_file', arguments: { path: 's/cursor.key', edits: [{ oldText: 'a', newText: 'b' }] } },
        { name: 'create_directory', arguments: { path: 'k/wt' } },
      ],
      { limits: { steps: 20 } },
    );
    const key = path.join(p.stateDir, 'servers', 'cursor.key');
    expect(run.toolCalls.map((c) => `${c.tool}:${c.outcome}`)).toEqual([
      'run_tests:ok',
      'write_file:error',
      'write_file:error',
      'edit_file:error',
      'create_directory:error',
    ]);
    expect(
      run.toolMessages.slice(1).map((m) => (JSON.parse(m.split('\n')[1]!) as { code: string }).code),
    ).toEqual(['PERMISSION_DENIED', 'PERMISSION_DENIED', 'PERMISSION_DENIED', 'PERMISSION_DENIED']);
    expect(readdirSync(p.stateDir).sort()).toEqual(['servers', 'tasks.db']);
    expect(readFileSync(key, 'utf8')).not.toContain('attacker-chosen');
    expect(readdirSync(path.join(p.stateDir, 'servers')).includes('wt')).toBe(false);
  },
  twin: {
    title: 'a link the agent made to a project directory (`d -> docs`) is written through',
    async run() {
      const p = await project({ d: 'docs' });
      const run = await p.run([
        { name: 'run_tests', arguments: {} },
        { name: 'write_file', arguments: { path: 'd/note.md', content: 'note\n' } },
      ]);
      expect(run.status).toBe('succeeded');
      expect(run.toolCalls.map((c) => `${c.tool}:${c.outcome}`)).toEqual(['run_tests:ok', 'write_file:ok']);
      expect(p.read('docs/note.md')).toBe('note\n');
    },
  },
});
