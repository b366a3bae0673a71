import { readdirSync } from 'node:fs';
import { expect } from 'vitest';
import { defineAttack } from '../src/attack.js';
import { createProject, writeTools } from '../src/world.js';

/** The filesystem tools and every git tool (git_worktree_add among them), in the layout `keel init` wrote on main. */
const project = async (links: Record<string, string> = {}) => {
  const p = await createProject({
    layout: 'inside',
    files: { 'README.md': '# project\n', 'docs/guide.md': 'guide\n' },
    links,
  });
  const agent = { model: 'gpt', tools: { filesystem: writeTools, git: ['*'] } };
  await p.configure({ agents: { planning: agent, coding: agent, review: agent } });
  return p;
};

const denied = (message: string) =>
  JSON.stringify(JSON.parse(message.split('\n')[1]!) as { code: string }, ['code']);

export default defineAttack({
  id: 'state-dir-through-alias',
  item: '19.4',
  onMain: 'guard',
  title:
    'the agent reaches `.keel` by other names: `docs/../.keel`, committed links to it (`alias -> .keel`, `docs/st -> ../.keel`), a git worktree it made (`wt/../.keel`, or one made inside `.keel`), and `git_add --all`',
  proves:
    'the state dir is denied on its real path whatever name reaches it, and git never stages it: every alias is refused and the store is untouched',
  async attack() {
    const p = await project({ alias: '.keel', 'docs/st': '../.keel' });
    const run = await p.run(
      [
        { name: 'read_file', arguments: { path: 'docs/../.keel/tasks.db' } },
        { name: 'list_directory', arguments: { path: 'alias' } },
        { name: 'read_file', arguments: { path: 'docs/st/servers/cursor.key' } },
        { name: 'write_file', arguments: { path: 'alias/evil.txt', content: 'x' } },
        { name: 'git_worktree_add', arguments: { path: '.keel/wt', branch: 'a' } },
        { name: 'git_worktree_add', arguments: { path: 'alias/wt', branch: 'b' } },
        { name: 'git_worktree_add', arguments: { path: 'wt', branch: 'c' } },
        { name: 'read_file', arguments: { path: 'wt/../.keel/servers/cursor.key' } },
        { name: 'git_add', arguments: { all: true } },
      ],
      { limits: { steps: 20 } },
    );
    expect(run.status).toBe('succeeded');
    expect(run.toolCalls.map((c) => `${c.tool}:${c.outcome}`)).toEqual([
      'read_file:error',
      'list_directory:error',
      'read_file:error',
      'write_file:error',
      'git_worktree_add:error',
      'git_worktree_add:error',
      'git_worktree_add:ok',
      'read_file:error',
      'git_add:ok',
    ]);
    const errors = run.toolMessages.filter((m) => m.includes('status="error"'));
    expect(errors.map(denied)).toEqual(Array(7).fill('{"code":"PERMISSION_DENIED"}'));
    // What git_add staged: the worktree the agent made, nothing of .keel.
    expect(run.toolMessages.at(-1)).toBe(
      '<tool_result tool="git_add" status="ok">\n1 staged: wt\n</tool_result>',
    );
    // Nothing was written into the state dir, no worktree made there.
    expect(readdirSync(p.stateDir).sort()).toEqual(['servers', 'tasks.db']);
  },
  twin: {
    title:
      'the same aliases onto project files: `docs/../README.md`, a link to `docs`, a worktree read through',
    async run() {
      const p = await project({ 'docs-link': 'docs' });
      const run = await p.run([
        { name: 'read_file', arguments: { path: 'docs/../README.md' } },
        { name: 'list_directory', arguments: { path: 'docs-link' } },
        { name: 'git_worktree_add', arguments: { path: 'wt', branch: 'c' } },
        { name: 'read_file', arguments: { path: 'wt/docs/guide.md' } },
      ]);
      expect(run.toolCalls.map((c) => `${c.tool}:${c.outcome}`)).toEqual([
        'read_file:ok',
        'list_directory:ok',
        'git_worktree_add:ok',
        'read_file:ok',
      ]);
      expect(run.status).toBe('succeeded');
      expect(run.toolMessages[3]).toContain('guide');
    },
  },
});
