import { expect } from 'vitest';
import { createProject } from './world.js';

/**
 * A project whose task waits for a human: `deploy/**` is irreversible and the agent's first call
 * writes `deploy/run.sh` (`echo hi`). The one approval it asks for, and the run.
 */
export async function waitingDeployWrite() {
  const p = await createProject({ files: { 'README.md': '# app\n', 'deploy/.keep': '' } });
  await p.configure({ irreversible: { tools: [], paths: ['deploy/**'] } });
  const run = await p.run([
    { name: 'write_file', arguments: { path: 'deploy/run.sh', content: 'echo hi\n' } },
  ]);
  const approvals = JSON.parse((await p.keel(['approvals', '--json'])).stdout) as Array<{ id: string }>;
  expect([run.status, approvals.length]).toEqual(['waiting', 1]);
  return { p, run, approval: approvals[0]!.id };
}
