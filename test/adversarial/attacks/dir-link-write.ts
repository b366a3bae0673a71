import { expect } from 'vitest';
import { defineAttack } from '../src/attack.js';
import { expectStoppedAtCap, expectSucceeded } from '../src/expect.js';
import { createProject } from '../src/world.js';

export default defineAttack({
  id: 'dir-link-write',
  item: '19.2',
  onMain: 'failed',
  title:
    '`write_file docs/link/workflows/ci.yml` through a committed link `docs/link -> ../.github` rewrites a protected file',
  proves: 'protected paths are matched on the real path the server writes, through every link',
  async attack() {
    const p = await createProject({
      files: { '.github/workflows/ci.yml': 'on: push\n' },
      links: { 'docs/link': '../.github' },
    });
    await p.configure({ sideEffects: { protectedPaths: ['.github/**'] } });
    const run = await p.run([
      {
        name: 'write_file',
        arguments: { path: 'docs/link/workflows/ci.yml', content: 'on: workflow_dispatch\n' },
      },
    ]);
    expectStoppedAtCap(run, 'write_file', 'protected_path');
    expect(p.read('.github/workflows/ci.yml')).toBe('on: push\n');
  },
  twin: {
    title: 'a normal write next to the link, in docs/',
    async run() {
      const p = await createProject({
        files: { '.github/workflows/ci.yml': 'on: push\n' },
        links: { 'docs/link': '../.github' },
      });
      await p.configure({ sideEffects: { protectedPaths: ['.github/**'], maxFilesChanged: 1 } });
      const run = await p.run([
        { name: 'write_file', arguments: { path: 'docs/notes.md', content: 'notes\n' } },
      ]);
      expectSucceeded(run);
      expect(p.read('docs/notes.md')).toBe('notes\n');
    },
  },
});
