import { readFile, writeFile } from 'node:fs/promises';
import { expect } from 'vitest';
import { parse, stringify } from 'yaml';
import { defineAttack } from '../src/attack.js';
import { asThePerson, startConsole } from '../src/console.js';
import { waitingDeployWrite } from '../src/waiting.js';
import { createProject, type Project } from '../src/world.js';

const firstLine = (r: { code: number; stderr: string }) => ({
  code: r.code,
  stderr: r.stderr.split('\n')[0],
});

const statusOf = async (p: Project, id: string) =>
  (JSON.parse((await p.keel(['approvals', 'show', id, '--json'])).stdout) as { status: string }).status;

export default defineAttack({
  id: 'config-edit-before-resume',
  item: '19.4',
  onMain: 'guard',
  title:
    '`keel.config.yaml` is edited while a task waits for an approval (its `irreversible.paths` dropped, `limits.steps: 6000`); `keel resume`, `keel approve`, `keel continue` (of an escalation) or the console would read the edited config and go on under it',
  proves:
    'a resume, and an approval or a continued escalation that resumes (from the CLI or the console), stop naming the parts of the config that changed, before anything is recorded, unless `--accept-changed-config` accepts them on purpose (recorded)',
  async attack() {
    const { p, run, approval } = await waitingDeployWrite();
    const config = parse(await readFile(p.configFile, 'utf8')) as Record<string, unknown>;
    await writeFile(
      p.configFile,
      stringify({ ...config, irreversible: { tools: [] }, limits: { steps: 6000 } }),
    );
    const changed = `ran under another config: changed since: irreversible, limits (${p.configFile})`;
    expect(firstLine(await p.keel(['resume', run.id, '--quiet']))).toEqual({
      code: 2,
      stderr: `keel: task ${run.id} ${changed}`,
    });
    expect(firstLine(await p.keel(['approve', approval, '--as', 'alice', '--quiet']))).toEqual({
      code: 2,
      stderr: `keel: ${approval} not decided: task ${run.id} ${changed}`,
    });
    expect(await statusOf(p, approval)).toBe('pending');
    // Nor through the console, which would resume the task in its own process.
    const person = await asThePerson((await startConsole(p)).url);
    expect(await person.post(`/api/approvals/${approval}/approve`, { by: 'alice' })).toEqual({
      status: 409,
      body: {
        error: {
          code: 'PRECONDITION_FAILED',
          message: `${approval} not decided: task ${run.id} ran under another config: changed since: irreversible, limits`,
          hint: `restore what changed, or decide and go on under the new config on purpose: keel approve ${approval} --accept-changed-config -c ${p.configFile}`,
        },
      },
    });
    expect(await statusOf(p, approval)).toBe('pending');
    expect(p.exists('deploy/run.sh')).toBe(false);
    // Accepted on purpose: the approval is recorded, the task goes on, and the log says why.
    const accepted = await p.keel([
      'approve',
      approval,
      '--as',
      'alice',
      '--accept-changed-config',
      '--quiet',
      '--json',
    ]);
    expect((JSON.parse(accepted.stdout) as { status: string }).status).toBe('succeeded');
    expect(p.read('deploy/run.sh')).toBe('echo hi\n');
    const shown = JSON.parse((await p.keel(['show', run.id, '--json'])).stdout) as {
      events: Array<{ type: string; data: { changed?: unknown } }>;
    };
    expect(
      shown.events.filter((e) => e.type === 'config_change_accepted').map((e) => e.data.changed),
    ).toEqual([['irreversible', 'limits']]);

    // The same for an escalation a person continues.
    const q = await createProject();
    await q.configure({ escalateLimits: ['steps'] });
    const writes = ['a', 'b', 'c'].map((f) => ({
      name: 'write_file',
      arguments: { path: `${f}.txt`, content: `${f}\n` },
    }));
    const stuck = await q.run(writes, { limits: { steps: 2 } });
    const [escalation] = JSON.parse((await q.keel(['approvals', '--json'])).stdout) as Array<{ id: string }>;
    expect([stuck.status, escalation?.id.slice(0, 3)]).toEqual(['escalated', 'es-']);
    const before = parse(await readFile(q.configFile, 'utf8')) as Record<string, unknown>;
    await writeFile(q.configFile, stringify({ ...before, limits: { steps: 6000 } }));
    const raise = ['continue', escalation!.id, '--raise', 'steps=20', '--as', 'alice', '--quiet'];
    expect(firstLine(await q.keel(raise))).toEqual({
      code: 2,
      stderr: `keel: ${escalation!.id} not decided: task ${stuck.id} ran under another config: changed since: limits (${q.configFile})`,
    });
    expect(await statusOf(q, escalation!.id)).toBe('pending');
    const continued = await q.keel([...raise, '--accept-changed-config', '--json']);
    expect((JSON.parse(continued.stdout) as { status: string }).status).toBe('succeeded');
    expect(q.read('c.txt')).toBe('c\n');
  },
  twin: {
    title:
      'the config rewritten with a comment and its keys in another order (the same config) resumes and finishes',
    async run() {
      const { p, approval } = await waitingDeployWrite();
      const config = parse(await readFile(p.configFile, 'utf8')) as Record<string, unknown>;
      const reordered = Object.fromEntries(Object.entries(config).reverse());
      await writeFile(p.configFile, `# reviewed by alice\n${stringify(reordered)}`);
      const approved = await p.keel(['approve', approval, '--as', 'alice', '--quiet', '--json']);
      expect((JSON.parse(approved.stdout) as { status: string }).status).toBe('succeeded');
      expect(p.read('deploy/run.sh')).toBe('echo hi\n');
    },
  },
});
