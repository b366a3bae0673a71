import { expect } from 'vitest';
import { defineAttack } from '../src/attack.js';
import { expectSucceeded } from '../src/expect.js';
import { createProject } from '../src/world.js';

/** A git binary patch creating `file` (a literal of 9 bytes, "on: push\n", deflated as git writes it). */
const binaryPatch = (file: string) =>
  [
    `diff --git a/${file} b/${file}`,
    'new file mode 100644',
    'index 0000000..8e3d4b1',
    'GIT binary patch',
    'literal 9',
    'QcmXTQPAw^*%gJR003&}K>z>%',
    '',
    'literal 0',
    'HcmV?d00001',
    '',
    '',
  ].join('\n');

const textPatch = (file: string) =>
  ['--- /dev/null', `+++ b/${file}`, '@@ -0,0 +1 @@', '+on: push', ''].join('\n');

export default defineAttack({
  id: 'binary-patch',
  item: '19.2',
  onMain: 'guard',
  title:
    'a `GIT binary patch` (no `---`/`+++` lines for a parser to size) creates `.github/workflows/evil.yml`',
  proves: 'a patch whose effect the server cannot predict changes nothing: the server refuses binary diffs',
  async attack() {
    const p = await createProject();
    await p.configure({ sideEffects: { protectedPaths: ['.github/**'] } });
    const run = await p.run([
      { name: 'apply_patch', arguments: { patch: binaryPatch('.github/workflows/evil.yml') } },
    ]);
    expect(run.toolCalls.map((c) => `${c.tool}:${c.outcome}`)).toEqual(['apply_patch:error']);
    expect(p.exists('.github/workflows/evil.yml')).toBe(false);
  },
  twin: {
    title: 'the same file created by a text patch in an unprotected directory',
    async run() {
      const p = await createProject();
      await p.configure({ sideEffects: { protectedPaths: ['.github/**'], maxFilesChanged: 1 } });
      const run = await p.run([{ name: 'apply_patch', arguments: { patch: textPatch('docs/ci.yml') } }]);
      expectSucceeded(run);
      expect(p.read('docs/ci.yml')).toBe('on: push\n');
    },
  },
});
