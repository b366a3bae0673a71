import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fixtureBin, tempDir, toolErrorOf, type ToolCallResult } from '@keel/testing';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ListRootsRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { describe, expect, it, onTestFinished } from 'vitest';

/** A v1 client (what most IDEs ship) that declares roots and answers roots/list with `roots`. */
async function clientWithRoots(args: string[], roots: string[]): Promise<Client> {
  const client = new Client(
    { name: 'ide', version: '0' },
    { capabilities: { roots: { listChanged: true } } },
  );
  client.setRequestHandler(ListRootsRequestSchema, () => ({
    roots: roots.map((root) => ({ uri: `file://${root}` })),
  }));
  const bin = fixtureBin(args);
  await client.connect(
    new StdioClientTransport({ command: bin.command, args: [...bin.args], stderr: 'ignore' }),
  );
  onTestFinished(() => client.close());
  return client;
}

const call = async (client: Client, file: string) =>
  (await client.callTool({ name: 'set_content', arguments: { path: file, content: 'x' } })) as ToolCallResult;

describe('MCP client roots', () => {
  it('narrow the server roots for that connection', async () => {
    const root = await tempDir('keel-root-');
    await mkdir(path.join(root, 'project'));
    const client = await clientWithRoots(
      ['--root', root, '--state-dir', await tempDir('keel-state-'), '--log-level', 'error'],
      [path.join(root, 'project')],
    );
    expect((await call(client, path.join(root, 'project', 'a.txt'))).structuredContent).toEqual({ bytes: 1 });
    const outside = await call(client, path.join(root, 'b.txt'));
    expect(toolErrorOf(outside)).toMatchObject({
      code: 'OUTSIDE_ROOTS',
      details: { roots: [path.join(root, 'project')] },
    });
    const info = await client.callTool({ name: 'server_info', arguments: {} });
    expect(info.structuredContent).toEqual({ roots: [path.join(root, 'project')] });
  });

  it('cannot widen them: a client root above the server root leaves the server root in force', async () => {
    const base = await tempDir('keel-base-');
    const root = path.join(base, 'root');
    await mkdir(root);
    const client = await clientWithRoots(
      ['--root', root, '--state-dir', await tempDir('keel-state-'), '--log-level', 'error'],
      [base, '/'],
    );
    expect((await client.callTool({ name: 'server_info', arguments: {} })).structuredContent).toEqual({
      roots: [root],
    });
    expect(toolErrorOf(await call(client, path.join(base, 'escape.txt')))?.code).toBe('OUTSIDE_ROOTS');
  });

  it('an empty roots list (a client with none configured) narrows nothing', async () => {
    const root = await tempDir('keel-root-');
    const client = await clientWithRoots(
      ['--root', root, '--state-dir', await tempDir('keel-state-'), '--log-level', 'error'],
      [],
    );
    expect((await client.callTool({ name: 'server_info', arguments: {} })).structuredContent).toEqual({
      roots: [root],
    });
    expect((await call(client, path.join(root, 'a.txt'))).structuredContent).toEqual({ bytes: 1 });
  });

  it('a disjoint client root leaves nothing reachable, and says so', async () => {
    const root = await tempDir('keel-root-');
    const elsewhere = await tempDir('keel-elsewhere-');
    const client = await clientWithRoots(
      ['--root', root, '--state-dir', await tempDir('keel-state-'), '--log-level', 'error'],
      [elsewhere],
    );
    const refused = await call(client, path.join(root, 'a.txt'));
    expect(toolErrorOf(refused)).toMatchObject({
      code: 'OUTSIDE_ROOTS',
      hint: 'No root is in force (the client roots do not overlap the server roots); nothing can be accessed.',
    });
  });
});
