import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { createFilesystem } from '../src/index.js';
import { callErr, callOk, connect } from './helpers.js';

// The arguments each path tool needs besides its paths. A new tool that declares paths must be added
// here, or this test fails: the deny policy is proven for every path tool the server lists.
const otherArgs: Record<string, Record<string, unknown>> = {
  read_file: {},
  read_files: {},
  list_directory: {},
  tree: {},
  find_files: { pattern: '**' },
  search_text: { pattern: 'TOKEN' },
  stat: {},
  write_file: { content: 'x' },
  edit_file: { edits: [{ oldText: 'TOKEN', newText: 'T' }] },
  create_directory: {},
  move: { source: 'ok.txt', destination: 'moved.txt' },
  delete: {},
};

describe('the deny policy and the .git guard hold for every path tool', () => {
  it('every declared path of every listed tool is refused when it names a denied path', async () => {
    const root = await tempDir();
    await mkdir(path.join(root, 'secrets'));
    await writeFile(path.join(root, 'secrets', 'key.txt'), 'TOKEN=def\n');
    await writeFile(path.join(root, 'ok.txt'), 'TOKEN=public\n');
    const client = await connect([root], 'v2', ['--deny', 'secrets']);
    const declared = new Map(createFilesystem().tools.map((tool) => [tool.spec.name, tool.spec.paths ?? {}]));
    const listed = (await client.listTools()).tools.map((tool) => tool.name).sort();
    const covered: string[] = [];
    for (const tool of listed) {
      const fields = Object.keys(declared.get(tool) ?? {});
      if (fields.length === 0) continue;
      expect(otherArgs[tool], `add ${tool} to otherArgs`).toBeDefined();
      for (const field of fields) {
        const denied = field === 'paths' ? ['secrets/key.txt'] : 'secrets/key.txt';
        const error = await callErr(client, tool, { ...otherArgs[tool], [field]: denied });
        expect({ tool, field, code: error.code }).toEqual({ tool, field, code: 'PERMISSION_DENIED' });
        covered.push(`${tool}.${field}`);
      }
    }
    expect(covered).toEqual([
      'create_directory.path',
      'delete.path',
      'edit_file.path',
      'find_files.path',
      'list_directory.path',
      'move.source',
      'move.destination',
      'read_file.path',
      'read_files.paths',
      'search_text.path',
      'stat.path',
      'tree.path',
      'write_file.path',
    ]);
    // Nothing was changed or moved.
    expect(await callOk(client, 'read_file', { path: 'ok.txt' })).toMatchObject({
      content: 'TOKEN=public\n',
    });
  });

  it('what lies under a directory a call deletes or moves counts, not only the path it names', async () => {
    const root = await tempDir();
    await mkdir(path.join(root, 'app', 'config'), { recursive: true });
    await writeFile(path.join(root, 'app', 'main.js'), 'main\n');
    await writeFile(path.join(root, 'app', 'config', '.env'), 'TOKEN=abc\n');
    await mkdir(path.join(root, 'vendor', 'lib', '.git'), { recursive: true });
    await writeFile(path.join(root, 'vendor', 'lib', '.git', 'config'), '[core]\n');
    const client = await connect([root], 'v2', ['--deny', '**/.env']);
    expect(await callErr(client, 'delete', { path: 'app', recursive: true })).toMatchObject({
      code: 'PERMISSION_DENIED',
      details: { path: 'app', blockedBy: 'app/config/.env' },
    });
    expect(await callErr(client, 'move', { source: 'app', destination: 'app2' })).toMatchObject({
      code: 'PERMISSION_DENIED',
      details: { path: 'app', blockedBy: 'app/config/.env' },
    });
    expect(await callErr(client, 'delete', { path: 'vendor', recursive: true })).toMatchObject({
      code: 'PERMISSION_DENIED',
      details: { path: 'vendor', blockedBy: 'vendor/lib/.git' },
    });
    // Nothing was removed.
    expect(await callOk(client, 'stat', { path: 'app/main.js' })).toMatchObject({ type: 'file' });
  });
});
