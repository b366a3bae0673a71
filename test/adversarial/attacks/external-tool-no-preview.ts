import { createRequire } from 'node:module';
import { expect } from 'vitest';
import { defineAttack } from '../src/attack.js';
import { expectStoppedAtCap, expectSucceeded } from '../src/expect.js';
import { createProject } from '../src/world.js';

const require = createRequire(import.meta.url);

/** A third-party server (the kit's fixture, started as any command): its `set_content` writes and has no preview. */
const withExternal = () => {
  const bin = require.resolve('@keel/testing/fixture-server').replace(/fixtureServer\.js$/, 'bin.js');
  return {
    servers: {
      filesystem: { builtin: 'filesystem', args: ['--root', '.'] },
      git: { builtin: 'git', args: ['--root', '.'] },
      other: { command: process.execPath, args: [bin, '--root', '.', '--log-level', 'error'] },
    },
    sideEffects: { protectedPaths: ['.github/**'] },
  };
};

export default defineAttack({
  id: 'external-tool-no-preview',
  item: '19.2',
  onMain: 'guard',
  title: "a third-party server's mutating tool (`set_content`, no preview) writes `.github/workflows/ci.yml`",
  proves:
    'a mutating tool that cannot preview its effect counts as crossing the caps: nothing it does is sized by guesswork',
  async attack() {
    const p = await createProject({ files: { '.github/workflows/ci.yml': 'on: push\n' } });
    await p.configure(withExternal());
    const run = await p.run([
      {
        name: 'set_content',
        arguments: { path: '.github/workflows/ci.yml', content: 'on: workflow_dispatch\n' },
      },
    ]);
    expectStoppedAtCap(run, 'set_content', 'protected_path');
    expect(p.read('.github/workflows/ci.yml')).toBe('on: push\n');
  },
  twin: {
    title: "the same server's read-only tool (`echo`) under the same caps",
    async run() {
      const p = await createProject({ files: { '.github/workflows/ci.yml': 'on: push\n' } });
      await p.configure(withExternal());
      const run = await p.run([{ name: 'echo', arguments: { text: 'hello' } }]);
      expectSucceeded(run);
      expect(run.toolMessages[0]).toContain('hello');
    },
  },
});
