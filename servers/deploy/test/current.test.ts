import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect, it } from 'vitest';
import { createProject, startInProcess } from './helpers.js';

// A reader in its own process: each request resolves `current` once and reads two files of that
// release, as a static file server would. It counts what it saw until the stop file appears.
const reader = `
const fs = require('node:fs');
const path = require('node:path');
const [current, stopFile] = process.argv.slice(1);
const seen = { v1: 0, v2: 0, missing: 0, mixed: 0, switchesSeen: 0 };
let last;
while (!fs.existsSync(stopFile)) {
  let dir;
  try {
    dir = fs.realpathSync(current);
    const page = fs.readFileSync(path.join(dir, 'index.html'), 'utf8');
    const script = fs.readFileSync(path.join(dir, 'app.js'), 'utf8');
    if (page !== script) { seen.mixed++; continue; }
    seen[page]++;
    if (last !== undefined && last !== page) seen.switchesSeen++;
    last = page;
  } catch (error) {
    seen.missing++;
  }
  if (seen.v1 + seen.v2 === 1) fs.writeFileSync(stopFile + '.ready', '');
}
process.stdout.write(JSON.stringify(seen));
`;

it('a reader resolving current during 50 switches never sees a missing or mixed release', async () => {
  const project = await createProject({ staging: {} }, { 'index.html': 'v1', 'app.js': 'v1' });
  const deploy = await startInProcess(project);
  const first = await deploy.call('plan_deploy', { environment: 'staging' });
  await deploy.call('apply_deploy', { planId: first.planId });
  await writeFile(path.join(project.build, 'index.html'), 'v2');
  await writeFile(path.join(project.build, 'app.js'), 'v2');
  const second = await deploy.call('plan_deploy', { environment: 'staging' });
  await deploy.call('apply_deploy', { planId: second.planId });

  const stopFile = path.join(project.stateDir, 'stop');
  const child = spawn(
    process.execPath,
    ['-e', reader, path.join(project.deployRoot, 'staging', 'current'), stopFile],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const { existsSync } = await import('node:fs');
  while (!existsSync(`${stopFile}.ready`)) await new Promise((resolve) => setTimeout(resolve, 5));

  for (let index = 0; index < 50; index++) {
    const to = index % 2 === 0 ? first.releaseId : second.releaseId;
    const switched = await deploy.call('rollback', { environment: 'staging', releaseId: to });
    expect(switched.changed).toBe(true);
  }
  await writeFile(stopFile, '');
  await exited;
  const seen = JSON.parse(out) as {
    v1: number;
    v2: number;
    missing: number;
    mixed: number;
    switchesSeen: number;
  };
  expect([seen.missing, seen.mixed]).toEqual([0, 0]);
  // The reader really ran across the switches: it saw both releases and the change between them.
  expect(seen.v1).toBeGreaterThan(0);
  expect(seen.v2).toBeGreaterThan(0);
  expect(seen.switchesSeen).toBeGreaterThan(1);
});
