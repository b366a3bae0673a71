import { createGitRepo } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { callError, callOk, startGit } from './helpers.js';

const lines = (prefix: string, count: number) =>
  Array.from({ length: count }, (_, i) => `${prefix} line ${i} ${'x'.repeat(i % 50)}\n`).join('');

describe('large diffs are bounded and complete via cursors', () => {
  it.each(['v2', 'v1'] as const)('follows cursors to the whole patch, byte for byte (%s)', async (kind) => {
    const repo = await createGitRepo({
      files: { 'a.txt': lines('a', 3000), 'b.txt': lines('b', 3000), 'ü.txt': lines('ü', 500) },
    });
    await repo.write('a.txt', lines('A', 3000));
    await repo.write('b.txt', lines('B', 3000));
    await repo.write('ü.txt', lines('Ü', 500));
    const expected = await repo.git(['-c', 'core.quotePath=false', 'diff', '--no-color', '-M']);
    expect(Buffer.byteLength(expected)).toBeGreaterThan(300_000);
    const client = await startGit(kind, [repo.dir]);

    const first = await client.callTool({ name: 'git_diff', arguments: {} });
    expect(Buffer.byteLength(JSON.stringify(first))).toBeLessThanOrEqual(64 * 1024);

    let page = await callOk(client, 'git_diff', { maxBytes: 20_000 });
    expect(page['files']).toEqual([
      { path: 'a.txt', status: 'modified', added: 3000, deleted: 3000, binary: false },
      { path: 'b.txt', status: 'modified', added: 3000, deleted: 3000, binary: false },
      { path: 'ü.txt', status: 'modified', added: 500, deleted: 500, binary: false },
    ]);
    let patch = page['patch'] as string;
    let pages = 1;
    let budget = 20_000;
    while (page['truncated'] !== undefined) {
      expect(Buffer.byteLength(page['patch'] as string)).toBeLessThanOrEqual(budget);
      // The budget is not part of the cursor binding: the next page may ask for a different size.
      budget = pages % 2 === 0 ? 20_000 : 30_000;
      page = await callOk(client, 'git_diff', { maxBytes: budget, cursor: page['truncated'].nextCursor });
      expect(page['files']).toBeUndefined();
      patch += page['patch'] as string;
      pages++;
    }
    expect(patch).toBe(expected);
    expect(pages).toBeGreaterThan(10);

    // One file's hunks on their own, with a cursor of their own.
    const single = await callOk(client, 'git_diff', { paths: ['b.txt'], maxBytes: 50_000 });
    expect(single['totals']).toEqual({ files: 1, added: 3000, deleted: 3000 });
    const other = await callError(client, 'git_diff', {
      paths: ['a.txt'],
      cursor: single['truncated'].nextCursor,
    });
    expect(other.code).toBe('INVALID_ARGUMENT');
  });

  it('pages a large commit in git_show to the same patch git prints', async () => {
    const repo = await createGitRepo({ files: { 'a.txt': lines('a', 2000) } });
    await repo.commit('big', { 'a.txt': lines('A', 2000), 'b.txt': lines('b', 2000) });
    const client = await startGit('v1', [repo.dir]);
    let page = await callOk(client, 'git_show', { maxBytes: 30_000 });
    expect(page['filesTotal']).toBe(2);
    let patch = page['patch'] as string;
    while (page['truncated'] !== undefined) {
      page = await callOk(client, 'git_show', { maxBytes: 30_000, cursor: page['truncated'].nextCursor });
      patch += page['patch'] as string;
    }
    expect(patch).toBe(await repo.git(['show', '--format=', '--no-color', '-M', 'HEAD']));
  });

  it('marks binary files and pages the status list', async () => {
    const repo = await createGitRepo({ files: { 'bin.dat': 'a\0b' } });
    await repo.write('bin.dat', 'c\0d');
    for (let i = 0; i < 25; i++) await repo.write(`new/${String(i).padStart(2, '0')}.txt`, `${i}\n`);
    const client = await startGit('v2', [repo.dir]);
    const diff = await callOk(client, 'git_diff');
    expect(diff['files']).toEqual([
      { path: 'bin.dat', status: 'modified', added: null, deleted: null, binary: true },
    ]);
    expect(diff['patch']).toBe(await repo.git(['diff', '--no-color']));
    expect(diff['patch']).toMatch(
      /^diff --git a\/bin.dat b\/bin.dat\nindex [0-9a-f]+\.\.[0-9a-f]+ 100644\nBinary files a\/bin.dat and b\/bin.dat differ\n$/,
    );

    const seen: string[] = [];
    let status = await callOk(client, 'git_status', { limit: 10 });
    expect(status['counts']).toEqual({ staged: 0, unstaged: 1, untracked: 25, conflicted: 0 });
    for (;;) {
      seen.push(...status['unstaged'].map((entry: { path: string }) => entry.path), ...status['untracked']);
      if (status['truncated'] === undefined) break;
      status = await callOk(client, 'git_status', { limit: 10, cursor: status['truncated'].nextCursor });
    }
    expect(seen).toEqual([
      'bin.dat',
      ...Array.from({ length: 25 }, (_, i) => `new/${String(i).padStart(2, '0')}.txt`),
    ]);
  });
});
