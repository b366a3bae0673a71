import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createPathJail } from '@keel/kit';
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
    expect([denied.isError, (denied._meta?.['keel/error'] as { code: string }).code]).toEqual([true, 'PERMISSION_DENIED']);
    expect(allowed.structuredContent).toMatchObject({ content: 'TOKEN=1\n' });
    await strict.close();
    await open.close();
  });

  it('exports the fourteen tools, every input field described', () => {
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
    const undescribed = tools.flatMap((t) =>
      Object.entries(t.inputSchema.shape)
        .filter(([, schema]) => (schema as { description?: string }).description === undefined)
        .map(([field]) => `${t.spec.name}.${field}`),
    );
    expect(undescribed).toEqual([]);
  });
});
