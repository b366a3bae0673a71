import { expect } from 'vitest';
import { defineAttack } from '../src/attack.js';
import { expectStoppedAtCap, expectSucceeded } from '../src/expect.js';
import { createProject } from '../src/world.js';

const quotedPatch = (file: string) =>
  [
    `diff --git "a/${file}" "b/${file}"`,
    `--- "a/${file}"`,
    `+++ "b/${file}"`,
    '@@ -1 +1 @@',
    '-on: push',
    '+on: workflow_dispatch',
    '',
  ].join('\n');

export default defineAttack({
  id: 'quoted-path',
  item: '19.2',
  onMain: 'failed',
  title:
    'a patch whose `---`/`+++` names are quoted (`"a/.github/workflows/x y.yml"`) edits a protected file',
  proves: 'a quoted name reaches the caps as the path the server writes, not as text with its quotes kept',
  async attack() {
    const p = await createProject({ files: { '.github/workflows/x y.yml': 'on: push\n' } });
    await p.configure({ sideEffects: { protectedPaths: ['.github/**'] } });
    const run = await p.run([
      { name: 'apply_patch', arguments: { patch: quotedPatch('.github/workflows/x y.yml') } },
    ]);
    expectStoppedAtCap(run, 'apply_patch', 'protected_path');
    expect(p.read('.github/workflows/x y.yml')).toBe('on: push\n');
  },
  twin: {
    title: 'the same quoted patch on an unprotected file with a space in its name, under a line cap',
    async run() {
      const p = await createProject({ files: { 'docs/x y.yml': 'on: push\n' } });
      await p.configure({ sideEffects: { protectedPaths: ['.github/**'], maxLinesChanged: 2 } });
      const run = await p.run([{ name: 'apply_patch', arguments: { patch: quotedPatch('docs/x y.yml') } }]);
      expectSucceeded(run);
      expect(p.read('docs/x y.yml')).toBe('on: workflow_dispatch\n');
    },
  },
});
