import { execFile } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { connectStdio, tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const repo = path.resolve(fileURLToPath(new URL('../../..', import.meta.url)));

// What people install: each server with the packs it depends on, from tarballs, into an empty
// directory outside the workspace, so nothing resolves through the monorepo.
const packed = ['packages/kit', 'servers/filesystem', 'servers/git', 'servers/test-runner', 'servers/deploy'];

const servers: Array<{ bin: string; args: (root: string) => string[]; tools: string[] }> = [
  { bin: 'keel-filesystem', args: () => [], tools: ['read_file', 'write_file', 'search_text'] },
  { bin: 'keel-git', args: () => [], tools: ['git_status', 'git_commit', 'git_log'] },
  { bin: 'keel-test-runner', args: () => [], tools: ['run_tests', 'get_run', 'detect_projects'] },
  {
    bin: 'keel-deploy',
    args: (root) => ['--config', path.join(root, 'keel.deploy.json')],
    tools: ['plan_deploy', 'apply_deploy', 'rollback'],
  },
];

describe('the packages people install', () => {
  it(
    'each server, packed and installed outside the workspace, answers tools/list over stdio',
    { timeout: 900_000 },
    async () => {
      const packs = await tempDir('keel-packs-');
      for (const dir of packed)
        await run('pnpm', ['pack', '--pack-destination', packs], { cwd: path.join(repo, dir) });
      const tarballs = (await readdir(packs)).filter((name) => name.endsWith('.tgz')).sort();
      expect(tarballs.map((name) => name.replace(/-\d+\.\d+\.\d+.*\.tgz$/, ''))).toEqual([
        'keel-kit',
        'keel-server-deploy',
        'keel-server-filesystem',
        'keel-server-git',
        'keel-server-test-runner',
      ]);

      const app = await tempDir('keel-installed-');
      expect(path.relative(repo, app).startsWith('..')).toBe(true);
      await writeFile(
        path.join(app, 'package.json'),
        JSON.stringify({ name: 'keel-install-check', private: true }),
      );
      await run(
        'npm',
        ['install', '--no-audit', '--no-fund', ...tarballs.map((name) => path.join(packs, name))],
        {
          cwd: app,
          maxBuffer: 64 * 1024 * 1024,
        },
      );

      const root = path.join(app, 'project');
      await mkdir(path.join(root, 'dist'), { recursive: true });
      await writeFile(
        path.join(root, 'keel.deploy.json'),
        JSON.stringify({
          environments: { staging: { build: 'dist', target: { type: 'directory', path: '../deploys' } } },
        }),
      );
      for (const server of servers) {
        const client = await connectStdio({
          command: process.execPath,
          args: [
            path.join(app, 'node_modules', '.bin', server.bin),
            '--root',
            root,
            '--state-dir',
            path.join(app, 'state'),
            '--log-level',
            'error',
            ...server.args(root),
          ],
          cwd: app,
        });
        const names = (await client.listTools()).tools.map((tool) => tool.name);
        expect({ bin: server.bin, has: server.tools.filter((tool) => names.includes(tool)) }).toEqual({
          bin: server.bin,
          has: server.tools,
        });
        await client.close();
      }
    },
  );
});
