import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { connectHttp, startHttpServer, tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { callOk, fsBin, kinds } from './helpers.js';

describe.each(kinds)('over Streamable HTTP (%s client)', (kind) => {
  it('serves the same tools on 127.0.0.1', async () => {
    const root = await tempDir();
    await writeFile(path.join(root, 'a.txt'), 'over http\n');
    const server = await startHttpServer(
      await fsBin([root], ['--http', '--port', '0', '--log-level', 'info']),
    );
    expect(new URL(server.url).hostname).toBe('127.0.0.1');
    const client = await connectHttp(server.url, kind);
    expect(await callOk(client, 'read_file', { path: 'a.txt' })).toMatchObject({
      content: 'over http\n',
      totalLines: 1,
    });
    expect(await callOk(client, 'write_file', { path: 'b.txt', content: 'b' })).toMatchObject({
      path: 'b.txt',
      created: true,
    });
  });
});
