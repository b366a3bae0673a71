import { expect } from 'vitest';
import { defineAttack } from '../src/attack.js';
import { expectSucceeded } from '../src/expect.js';
import { createProject } from '../src/world.js';

export default defineAttack({
  id: 'state-dir-in-workspace',
  item: '19.4',
  onMain: 'failed',
  title:
    'with the state dir inside the workspace (`stateDir: .keel`, what `keel init` wrote), the agent lists `.keel` and reads `.keel/tasks.db`',
  proves: "the supervisor's state dir is denied to every tool on its real path, wherever the config puts it",
  async attack() {
    const p = await createProject({ layout: 'inside' });
    const run = await p.run([
      { name: 'list_directory', arguments: { path: '.keel' } },
      { name: 'read_file', arguments: { path: '.keel/tasks.db' } },
      { name: 'read_file', arguments: { path: 'sub/../.keel/tasks.db-wal' } },
    ]);
    expect(run.toolCalls.map((c) => `${c.tool}:${c.outcome}`)).toEqual([
      'list_directory:error',
      'read_file:error',
      'read_file:error',
    ]);
    expect(run.toolMessages.filter((m) => m.includes('PERMISSION_DENIED')).length).toBe(3);
  },
  twin: {
    title: 'listing the project and reading its README, in the same layout',
    async run() {
      const p = await createProject({ layout: 'inside' });
      const run = await p.run([
        { name: 'list_directory', arguments: { path: '.' } },
        { name: 'read_file', arguments: { path: 'README.md' } },
      ]);
      expectSucceeded(run);
      expect(run.toolMessages[1]).toContain('# project');
    },
  },
});
