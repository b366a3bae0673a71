import { createPathJail } from '@keel/kit';
import { connectHttp, createGitRepo, startHttpServer, tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { createGitServer } from '../src/index.js';
import { binPath, callOk } from './helpers.js';

describe('other ways to use the server', () => {
  it.each(['v2', 'v1'] as const)('serves Streamable HTTP on loopback (%s)', async (kind) => {
    const repo = await createGitRepo({ files: { 'a.txt': 'a\n' } });
    const server = await startHttpServer({
      command: process.execPath,
      args: [binPath, '--root', repo.dir, '--http', '--port', '0', '--state-dir', await tempDir()],
    });
    expect(new URL(server.url).hostname).toBe('127.0.0.1');
    const client = await connectHttp(server.url, kind);
    expect((await callOk(client, 'git_status'))['branch']['head']).toBe('main');
  });

  it('runs in-process as a library', async () => {
    const repo = await createGitRepo({ files: { 'a.txt': 'a\n' } });
    const server = createGitServer({ jail: await createPathJail([repo.dir]) });
    const result = await server.callTool('git_log', { limit: 5 });
    expect(
      (result.structuredContent as { commits: Array<{ subject: string }> }).commits.map(
        (commit) => commit.subject,
      ),
    ).toEqual(['initial']);
    await server.close();
  });

  it('describes every input field, so a model knows what to pass', async () => {
    const server = createGitServer({ jail: await createPathJail([await tempDir()]) });
    const undescribed = server.listTools().flatMap((tool) =>
      Object.entries((tool.inputSchema.properties ?? {}) as Record<string, { description?: string }>)
        .filter(([, prop]) => !prop.description)
        .map(([name]) => `${tool.name}.${name}`),
    );
    expect(undescribed).toEqual([]);
    expect(server.listTools()).toHaveLength(22);
    await server.close();
  });
});
