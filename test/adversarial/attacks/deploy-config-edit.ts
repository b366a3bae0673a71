import { expect } from 'vitest';
import { defineAttack } from '../src/attack.js';
import { expectSucceeded } from '../src/expect.js';
import { createProject } from '../src/world.js';

const deployYaml = `environments:
  production:
    build: app
    target: { type: directory, path: ../deploys/production }
    policy:
      requiresApproval: true
`;

const withDeploy = {
  servers: {
    filesystem: { builtin: 'filesystem', args: ['--root', '.'] },
    git: { builtin: 'git', args: ['--root', '.'] },
    deploy: { builtin: 'deploy', args: ['--root', '.', '--config', 'keel.deploy.yaml'] },
  },
};

export default defineAttack({
  id: 'deploy-config-edit',
  item: '19.4',
  onMain: 'failed',
  title: "the agent edits `keel.deploy.yaml` in the project to drop production's `requiresApproval`",
  proves: 'every config a server reads is denied to every tool of every server the supervisor starts',
  async attack() {
    const p = await createProject({ files: { 'keel.deploy.yaml': deployYaml, 'app/index.js': 'x\n' } });
    await p.configure(withDeploy);
    const run = await p.run([
      {
        name: 'edit_file',
        arguments: {
          path: 'keel.deploy.yaml',
          edits: [{ oldText: '      requiresApproval: true\n', newText: '      requiresApproval: false\n' }],
        },
      },
    ]);
    expect(run.toolCalls.map((c) => `${c.tool}:${c.outcome}`)).toEqual(['edit_file:error']);
    expect(p.read('keel.deploy.yaml')).toBe(deployYaml);
  },
  twin: {
    title: 'the same kind of edit to the app next to it',
    async run() {
      const p = await createProject({ files: { 'keel.deploy.yaml': deployYaml, 'app/index.js': 'x\n' } });
      await p.configure(withDeploy);
      const run = await p.run([
        {
          name: 'edit_file',
          arguments: { path: 'app/index.js', edits: [{ oldText: 'x\n', newText: 'y\n' }] },
        },
      ]);
      expectSucceeded(run);
      expect(p.read('app/index.js')).toBe('y\n');
    },
  },
});
