import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { connectStdio, tempDir, toolErrorOf } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { binPath, copyFixture, startServer } from './helpers.js';

describe('run_tests finds a project by its directory', () => {
  it('takes the id, a relative or absolute directory, or a unique directory name', async () => {
    const root = await tempDir('keel-tr-mono-');
    for (const dir of ['apps/alpha', 'libs/beta']) {
      await mkdir(path.join(root, dir), { recursive: true });
      await copyFixture('node-test', path.join(root, dir));
    }
    const server = await startServer(root, 'v2');
    const projectOf = async (project: string) => {
      const result = await server.call('run_tests', {
        project,
        files: [`${project.includes('beta') ? 'libs/beta' : 'apps/alpha'}/test/math.test.js`],
      });
      return result.isError
        ? toolErrorOf(result)?.code
        : (result.structuredContent!['project'] as { id: string }).id;
    };
    expect(await projectOf('apps/alpha:node-test')).toBe('apps/alpha:node-test');
    expect(await projectOf('apps/alpha')).toBe('apps/alpha:node-test');
    expect(await projectOf('./apps/alpha/')).toBe('apps/alpha:node-test');
    expect(await projectOf(path.join(root, 'libs', 'beta'))).toBe('libs/beta:node-test');
    expect(await projectOf('beta')).toBe('libs/beta:node-test');

    const missing = await server.call('run_tests', { project: 'gamma' });
    expect(toolErrorOf(missing)).toMatchObject({ code: 'NOT_FOUND' });
    expect(toolErrorOf(missing)?.hint).toContain('apps/alpha:node-test, libs/beta:node-test');
  });
});

describe('the server state never enters the inputs hash', () => {
  it('a second identical run is served from the cache when --state-dir lies inside the root', async () => {
    const root = await copyFixture('node-test');
    const client = await connectStdio({
      command: process.execPath,
      args: [binPath, '--root', root, '--state-dir', path.join(root, '.keel-state'), '--log-level', 'warn'],
    });
    const run = async () =>
      (
        await client.callTool(
          { name: 'run_tests', arguments: { files: ['test/math.test.js'] } },
          { timeout: 120_000 },
        )
      ).structuredContent!;
    const first = await run();
    const second = await run();
    expect([first['cached'], second['cached']]).toEqual([false, true]);
    expect(second['runId']).toBe(first['runId']);
  });
});
