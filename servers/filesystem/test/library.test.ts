import { readdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { callFingerprint, createPathJail, createSqliteIdempotencyStore, openStateDatabase } from '@keel/kit';
import { tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { createFilesystemServer, createFilesystemTools } from '../src/index.js';

describe('library use', () => {
  it('two servers in one process keep their own policies', async () => {
    const root = await tempDir();
    await writeFile(path.join(root, '.env'), 'TOKEN=1\n');
    const jail = await createPathJail([root]);
    const strict = createFilesystemServer({ jail, deny: ['.env'] });
    const open = createFilesystemServer({ jail });
    const denied = await strict.callTool('read_file', { path: '.env' });
    const allowed = await open.callTool('read_file', { path: '.env' });
    expect([denied.isError, (denied._meta?.['keel/error'] as { code: string } | undefined)?.code]).toEqual([
      true,
      'PERMISSION_DENIED',
    ]);
    expect(allowed.structuredContent).toMatchObject({ content: 'TOKEN=1\n' });
    await strict.close();
    await open.close();
  });

  it('exports the fourteen tools, every input field described', async () => {
    const tools = createFilesystemTools();
    expect(tools.map((t) => t.spec.name)).toEqual([
      'list_roots',
      'read_file',
      'read_files',
      'list_directory',
      'tree',
      'find_files',
      'search_text',
      'stat',
      'write_file',
      'edit_file',
      'apply_patch',
      'create_directory',
      'move',
      'delete',
    ]);
    const undescribed = createFilesystemServer({ jail: await createPathJail([await tempDir()]) })
      .listTools()
      .flatMap((tool) =>
        Object.entries((tool.inputSchema.properties ?? {}) as Record<string, { description?: string }>)
          .filter(([, property]) => property.description === undefined)
          .map(([field]) => `${tool.name}.${field}`),
      );
    expect(undescribed).toEqual([]);
  });

  it.each([
    ['the move happened before the crash', true],
    ['the move did not happen', false],
  ])('a keyed move whose process died is reconciled: %s', async (_name, happened) => {
    const root = await tempDir();
    const stateDir = await tempDir('keel-fs-state-');
    await writeFile(path.join(root, 'a.txt'), 'A');
    const state = openStateDatabase(stateDir);
    const store = createSqliteIdempotencyStore(state.db);
    const input = { source: 'a.txt', destination: 'b.txt', overwrite: false };
    // A claim by a process that died: its lease ran out long ago.
    const claim = await store.claim({
      scope: 'keel-filesystem',
      key: 'move-1',
      fingerprint: callFingerprint('keel-filesystem', 'move', input),
      owner: 'dead-process',
      leaseMs: 1,
      ttlMs: 3_600_000,
      now: Date.now() - 60_000,
    });
    expect(claim.kind).toBe('claimed');
    if (happened) await rename(path.join(root, 'a.txt'), path.join(root, 'b.txt'));
    const server = createFilesystemServer({ jail: await createPathJail([root]), store });
    const result = await server.callTool('move', { ...input, idempotencyKey: 'move-1' });
    expect(result.isError).toBeUndefined();
    expect(result.structuredContent).toEqual({ source: 'a.txt', destination: 'b.txt', replaced: false });
    expect(await readdir(root)).toEqual(['b.txt']);
    await server.close();
    state.close();
  });
});
