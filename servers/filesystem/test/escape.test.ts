import { mkdir, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { callErr, connect, kinds, type Client } from './helpers.js';

// The kit's escape table, applied through every path-taking tool of this server:
//   base/root/            the root (inside.txt, sub/)
//   base/root/link-out -> base/outside, sub-link -> base/outside, dangling -> base/outside/new.txt
//   base/root-evil/secret.txt (sibling sharing the prefix), base/outside/secret.txt
async function layout(): Promise<{ base: string; root: string }> {
  const base = await tempDir('keel-fs-escape-');
  const root = path.join(base, 'root');
  await mkdir(path.join(root, 'sub'), { recursive: true });
  await mkdir(path.join(base, 'root-evil'));
  await mkdir(path.join(base, 'outside'));
  await writeFile(path.join(root, 'inside.txt'), 'in\n');
  await writeFile(path.join(base, 'root-evil', 'secret.txt'), 'evil\n');
  await writeFile(path.join(base, 'outside', 'secret.txt'), 'secret\n');
  await symlink(path.join(base, 'outside'), path.join(root, 'link-out'));
  await symlink(path.join(base, 'outside'), path.join(root, 'sub-link'));
  await symlink(path.join(base, 'outside', 'new.txt'), path.join(root, 'dangling'));
  return { base, root };
}

const attempts = (base: string): Array<[string, string]> => [
  ['dot-dot', '../outside/secret.txt'],
  ['dot-dot inside a path', 'sub/../../outside/secret.txt'],
  ['absolute outside', path.join(base, 'outside', 'secret.txt')],
  ['sibling sharing the prefix', path.join(base, 'root-evil', 'secret.txt')],
  ['sibling prefix, relative', '../root-evil/secret.txt'],
  ['symlink out', 'link-out/secret.txt'],
  ['symlink out, itself', 'link-out'],
  ['parent-directory symlink, new file', 'sub-link/new-file.txt'],
  ['dangling symlink out', 'dangling'],
  ['NUL byte', 'inside.txt\0../../etc/passwd'],
  ['Windows drive path', 'C:\\Windows\\system32'],
  ['backslash traversal', '..\\outside\\secret.txt'],
  ['root of the filesystem', '/'],
  ['file URI outside', `file://${path.join(base, 'outside', 'secret.txt')}`],
];

const patchFor = (target: string) => `--- a/${target}\n+++ b/${target}\n@@ -1,1 +1,1 @@\n-secret\n+owned\n`;
const createPatchFor = (target: string) => `--- /dev/null\n+++ b/${target}\n@@ -0,0 +1,1 @@\n+owned\n`;

const tools: Array<[string, (p: string) => [string, Record<string, unknown>]]> = [
  ['read_file', (p) => ['read_file', { path: p }]],
  ['read_files', (p) => ['read_files', { paths: ['inside.txt', p] }]],
  ['list_directory', (p) => ['list_directory', { path: p }]],
  ['tree', (p) => ['tree', { path: p }]],
  ['find_files', (p) => ['find_files', { path: p, pattern: '**' }]],
  ['search_text', (p) => ['search_text', { path: p, pattern: 'secret' }]],
  ['stat', (p) => ['stat', { path: p }]],
  ['write_file', (p) => ['write_file', { path: p, content: 'owned\n', createParents: true }]],
  ['edit_file', (p) => ['edit_file', { path: p, edits: [{ oldText: 'secret', newText: 'owned' }] }]],
  ['create_directory', (p) => ['create_directory', { path: p }]],
  ['move source', (p) => ['move', { source: p, destination: 'moved', overwrite: true }]],
  ['move destination', (p) => ['move', { source: 'inside.txt', destination: p, overwrite: true }]],
  ['delete', (p) => ['delete', { path: p, recursive: true }]],
  ['apply_patch modify', (p) => ['apply_patch', { patch: patchFor(p) }]],
  ['apply_patch create', (p) => ['apply_patch', { patch: createPatchFor(p) }]],
];

async function snapshot(base: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const dir of ['outside', 'root-evil']) {
    for (const name of await readdir(path.join(base, dir)))
      out[`${dir}/${name}`] = await readFile(path.join(base, dir, name), 'utf8');
  }
  return out;
}

describe.each(kinds)('escape table through every tool (%s client)', (kind) => {
  let client: Client;
  let base: string;
  let root: string;
  it.each(tools)('%s refuses every escape and changes nothing outside', async (_name, build) => {
    ({ base, root } = await layout());
    client = await connect([root], kind);
    const before = await snapshot(base);
    const results: Record<string, string> = {};
    for (const [label, attempt] of attempts(base)) {
      // Patch file names cannot carry NUL or a URI; the plain-path rows cover them.
      if (_name.startsWith('apply_patch') && (attempt.includes('\0') || attempt.startsWith('file:')))
        continue;
      const [tool, args] = build(attempt);
      const result = await client.callTool({ name: tool, arguments: args });
      const code = (result._meta?.['keel/error'] as { code?: string } | undefined)?.code;
      results[label] =
        result.isError === true
          ? (code ?? 'no code')
          : `succeeded: ${result.content[0]?.text?.slice(0, 200)}`;
    }
    expect(Object.keys(results)).toHaveLength(_name.startsWith('apply_patch') ? 12 : 14);
    for (const [label, outcome] of Object.entries(results))
      expect([label, outcome]).toEqual([label, 'OUTSIDE_ROOTS']);
    expect(await snapshot(base)).toEqual(before);
    expect(await readFile(path.join(root, 'inside.txt'), 'utf8')).toBe('in\n');
  });

  it('a read_files call with an escaping path fails as a whole, naming the field', async () => {
    ({ base, root } = await layout());
    client = await connect([root], kind);
    const error = await callErr(client, 'read_files', { paths: ['inside.txt', '../outside/secret.txt'] });
    expect(error.code).toBe('OUTSIDE_ROOTS');
  });
});
