import { readdir, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { callOk, connect } from './helpers.js';

describe('the temp file of a write killed mid-way', () => {
  it('is never shown as a user file, and the next write of its file removes it once stale', async () => {
    const root = await tempDir('keel-fs-temp-');
    await writeFile(path.join(root, 'a.txt'), 'a\n');
    const stale = '.a.txt.keel-0123456789ab.tmp';
    const fresh = '.a.txt.keel-ba9876543210.tmp';
    await writeFile(path.join(root, stale), 'half a wri');
    await writeFile(path.join(root, fresh), 'a write in flight');
    const hourAgo = new Date(Date.now() - 3_600_000);
    await utimes(path.join(root, stale), hourAgo, hourAgo);
    const client = await connect([root]);

    const listed = await callOk<{ entries: Array<{ name: string }> }>(client, 'list_directory', {
      path: '.',
    });
    expect(listed.entries.map((e) => e.name)).toEqual(['a.txt']);
    const tree = await callOk<{ entries: Array<{ path: string }> }>(client, 'tree', { path: '.' });
    expect(tree.entries.map((e) => e.path)).toEqual(['a.txt']);
    const found = await callOk<{ matches: Array<{ path: string }> }>(client, 'search_text', {
      pattern: 'wri',
    });
    expect(found.matches).toEqual([]);

    await callOk(client, 'write_file', { path: 'a.txt', content: 'b\n' });
    // The stale one is gone; the fresh one may belong to a write still running in another process.
    expect((await readdir(root)).sort()).toEqual([fresh, 'a.txt']);
  });
});
