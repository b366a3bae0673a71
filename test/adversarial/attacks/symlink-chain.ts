import { expect } from 'vitest';
import { defineAttack } from '../src/attack.js';
import { expectStoppedAtCap, expectSucceeded } from '../src/expect.js';
import { createProject } from '../src/world.js';

const editPatch = (file: string) =>
  [`--- a/${file}`, `+++ b/${file}`, '@@ -1 +1 @@', '-on: push', '+on: workflow_dispatch', ''].join('\n');

export default defineAttack({
  id: 'symlink-chain',
  item: '19.2',
  onMain: 'failed',
  title:
    'a patch edits `notes/today.yml`, a link to a link (`notes/today.yml -> ../tmp/ci -> ../.github/workflows/ci.yml`)',
  proves: 'a chain of links is followed to the protected file it ends at',
  async attack() {
    const p = await createProject({
      files: { '.github/workflows/ci.yml': 'on: push\n' },
      links: { 'tmp/ci': '../.github/workflows/ci.yml', 'notes/today.yml': '../tmp/ci' },
    });
    await p.configure({ sideEffects: { protectedPaths: ['.github/**'] } });
    const run = await p.run([{ name: 'apply_patch', arguments: { patch: editPatch('notes/today.yml') } }]);
    expectStoppedAtCap(run, 'apply_patch', 'protected_path');
    expect(p.read('.github/workflows/ci.yml')).toBe('on: push\n');
  },
  twin: {
    title: 'the same patch through a chain of links that ends at an unprotected file',
    async run() {
      const p = await createProject({
        files: { 'config/ci.yml': 'on: push\n' },
        links: { 'tmp/ci': '../config/ci.yml', 'notes/today.yml': '../tmp/ci' },
      });
      await p.configure({ sideEffects: { protectedPaths: ['.github/**'], maxFilesChanged: 1 } });
      const run = await p.run([{ name: 'apply_patch', arguments: { patch: editPatch('notes/today.yml') } }]);
      expectSucceeded(run);
      expect(p.read('config/ci.yml')).toBe('on: workflow_dispatch\n');
    },
  },
});
