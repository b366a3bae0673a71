import { expect } from 'vitest';
import { defineAttack } from '../src/attack.js';
import { expectStoppedAtCap, expectSucceeded } from '../src/expect.js';
import { createProject } from '../src/world.js';

const renamePatch = (from: string, to: string) =>
  [
    `diff --git a/${from} b/${to}`,
    'similarity index 100%',
    `rename from ${from}`,
    `rename to ${to}`,
    '',
  ].join('\n');

export default defineAttack({
  id: 'rename-header-only',
  item: '19.2',
  onMain: 'failed',
  title:
    '`apply_patch` with a git header-only rename (no hunks) moves `.github/workflows/ci.yml`, a protected path, to `src/ci.yml`',
  proves: "the caps are gated on the server's own preview, which sees both paths of a rename",
  async attack() {
    const p = await createProject({
      files: { '.github/workflows/ci.yml': 'on: push\n', 'README.md': '# p\n' },
    });
    await p.configure({ sideEffects: { protectedPaths: ['.github/**'] } });
    const run = await p.run([
      { name: 'apply_patch', arguments: { patch: renamePatch('.github/workflows/ci.yml', 'src/ci.yml') } },
    ]);
    expectStoppedAtCap(run, 'apply_patch', 'protected_path');
    expect([p.exists('.github/workflows/ci.yml'), p.exists('src/ci.yml')]).toEqual([true, false]);
  },
  twin: {
    title: 'the same header-only rename of an unprotected file',
    async run() {
      const p = await createProject({
        files: { 'docs/a.md': 'a\n', '.github/workflows/ci.yml': 'on: push\n' },
      });
      await p.configure({ sideEffects: { protectedPaths: ['.github/**'], maxFilesChanged: 2 } });
      const run = await p.run([
        { name: 'apply_patch', arguments: { patch: renamePatch('docs/a.md', 'docs/b.md') } },
      ]);
      expectSucceeded(run);
      expect([p.exists('docs/a.md'), p.read('docs/b.md')]).toEqual([false, 'a\n']);
    },
  },
});
