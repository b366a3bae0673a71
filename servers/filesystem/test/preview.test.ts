import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { EffectPreview } from '@keel/kit';
import { tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { callErr, callOk, connect, kinds, type Client } from './helpers.js';

const sha = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');
const asPreview = { 'keel/preview': true };
const logo = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x01, 0x02, 0x03]);

/**
 * A project with protected files and the ways to reach them sideways:
 *   .github/workflows/ci.yml   .github/logo.png (binary)   notes/x y.yml   src/
 *   docs/link -> ../.github    docs/chain -> link/workflows   (a committed link, and a chain of two)
 */
async function project(kind: (typeof kinds)[number]): Promise<{ root: string; client: Client }> {
  const root = await tempDir('keel-fs-preview-');
  await mkdir(path.join(root, '.github', 'workflows'), { recursive: true });
  await mkdir(path.join(root, 'notes'));
  await mkdir(path.join(root, 'src'));
  await mkdir(path.join(root, 'docs'));
  await writeFile(path.join(root, '.github', 'workflows', 'ci.yml'), 'on: push\n');
  await writeFile(path.join(root, '.github', 'logo.png'), logo);
  await writeFile(path.join(root, 'notes', 'x y.yml'), 'a\n');
  await symlink('../.github', path.join(root, 'docs', 'link'));
  await symlink('link/workflows', path.join(root, 'docs', 'chain'));
  const client = await connect([root], kind);
  // Listed first, so the client checks every structured result against the published output schema.
  await client.listTools();
  return { root, client };
}

const preview = async (client: Client, tool: string, args: Record<string, unknown>) =>
  (await callOk<{ preview: EffectPreview }>(client, tool, args, asPreview)).preview;

const bound = (files: EffectPreview['files']) =>
  sha(
    JSON.stringify({
      basis: [],
      files: files
        .map((f) => [f.path, f.sha256Before, f.from ?? null, f.fromSha256Before ?? null])
        .sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1)),
    }),
  );

describe.each(kinds)('the filesystem server previews its own effects (%s client)', (kind) => {
  it('a git header-only rename previews as a rename FROM the protected file', async () => {
    const { root, client } = await project(kind);
    const patch = [
      'diff --git a/.github/workflows/ci.yml b/src/ci.yml',
      'similarity index 100%',
      'rename from .github/workflows/ci.yml',
      'rename to src/ci.yml',
      '',
    ].join('\n');
    const files: EffectPreview['files'] = [
      {
        path: path.join(root, 'src', 'ci.yml'),
        change: 'rename',
        from: path.join(root, '.github', 'workflows', 'ci.yml'),
        linesAdded: 0,
        linesRemoved: 0,
        sha256Before: null,
        fromSha256Before: sha('on: push\n'),
      },
    ];
    expect(await preview(client, 'apply_patch', { patch })).toEqual({
      complete: true,
      files,
      binding: bound(files),
    });
    // Nothing moved; the real call moves exactly what was previewed.
    expect(existsSync(path.join(root, '.github', 'workflows', 'ci.yml'))).toBe(true);
    await callOk(client, 'apply_patch', { patch }, { 'keel/expect-preview': bound(files) });
    expect([
      existsSync(path.join(root, '.github', 'workflows', 'ci.yml')),
      await readFile(path.join(root, 'src', 'ci.yml'), 'utf8'),
    ]).toEqual([false, 'on: push\n']);
  });

  it('quoted names preview unquoted, a copy header as a copy, a binary rename as binary', async () => {
    const { root, client } = await project(kind);
    const quoted = await preview(client, 'apply_patch', {
      patch: '--- "a/notes/x y.yml"\n+++ "b/notes/x y.yml"\n@@ -1 +1 @@\n-a\n+b\n',
    });
    expect(quoted.files).toEqual([
      {
        path: path.join(root, 'notes', 'x y.yml'),
        change: 'modify',
        linesAdded: 1,
        linesRemoved: 1,
        sha256Before: sha('a\n'),
      },
    ]);
    const copy = [
      'diff --git a/.github/workflows/ci.yml b/.github/workflows/deploy.yml',
      'similarity index 100%',
      'copy from .github/workflows/ci.yml',
      'copy to .github/workflows/deploy.yml',
      '',
    ].join('\n');
    expect((await preview(client, 'apply_patch', { patch: copy })).files).toEqual([
      {
        path: path.join(root, '.github', 'workflows', 'deploy.yml'),
        change: 'copy',
        from: path.join(root, '.github', 'workflows', 'ci.yml'),
        linesAdded: 0,
        linesRemoved: 0,
        sha256Before: null,
        fromSha256Before: sha('on: push\n'),
      },
    ]);
    await callOk(client, 'apply_patch', { patch: copy });
    expect([
      await readFile(path.join(root, '.github', 'workflows', 'ci.yml'), 'utf8'),
      await readFile(path.join(root, '.github', 'workflows', 'deploy.yml'), 'utf8'),
    ]).toEqual(['on: push\n', 'on: push\n']);
    const binaryRename =
      'diff --git a/.github/logo.png b/src/logo.png\nsimilarity index 100%\nrename from .github/logo.png\nrename to src/logo.png\n';
    expect((await preview(client, 'apply_patch', { patch: binaryRename })).files).toEqual([
      {
        path: path.join(root, 'src', 'logo.png'),
        change: 'rename',
        from: path.join(root, '.github', 'logo.png'),
        linesAdded: 0,
        linesRemoved: 0,
        binary: true,
        sha256Before: null,
        fromSha256Before: sha(logo),
      },
    ]);
    await callOk(client, 'apply_patch', { patch: binaryRename });
    expect(await readFile(path.join(root, 'src', 'logo.png'))).toEqual(logo);
  });

  it('a binary diff previews as the refusal the call gives, and nothing changes', async () => {
    const { root, client } = await project(kind);
    for (const patch of [
      'diff --git a/.github/logo.png b/.github/logo.png\nindex 1111111..2222222 100644\nBinary files a/.github/logo.png and b/.github/logo.png differ\n',
      'diff --git a/.github/logo.png b/.github/logo.png\nindex 1111111..2222222 100644\nGIT binary patch\nliteral 5\nMc${NkWMX3k00aO6LjV8(\n\nliteral 8\nPcmeAS@N?(olHy`uVBq!ia0vp^\n\n',
    ]) {
      const expected = {
        code: 'INVALID_ARGUMENT',
        message: "patch for '.github/logo.png' is a binary diff",
        hint: 'Write binary files with write_file (base64).',
        retryable: false,
      };
      expect(await callErr(client, 'apply_patch', { patch }, asPreview)).toEqual(expected);
      expect(await callErr(client, 'apply_patch', { patch })).toEqual(expected);
    }
    expect(await readFile(path.join(root, '.github', 'logo.png'))).toEqual(logo);
  });

  it('writing through a committed directory link, or a chain of links, previews the real target', async () => {
    const { root, client } = await project(kind);
    const real = path.join(root, '.github', 'workflows', 'ci.yml');
    for (const through of ['docs/link/workflows/ci.yml', 'docs/chain/ci.yml']) {
      expect(
        (await preview(client, 'write_file', { path: through, content: 'on: [push, pr]\nrun: evil\n' }))
          .files,
      ).toEqual([
        { path: real, change: 'modify', linesAdded: 2, linesRemoved: 1, sha256Before: sha('on: push\n') },
      ]);
      expect(
        (
          await preview(client, 'apply_patch', {
            patch: `--- a/${through}\n+++ b/${through}\n@@ -1 +1 @@\n-on: push\n+on: pr\n`,
          })
        ).files,
      ).toEqual([
        { path: real, change: 'modify', linesAdded: 1, linesRemoved: 1, sha256Before: sha('on: push\n') },
      ]);
      expect(
        (await preview(client, 'edit_file', { path: through, edits: [{ oldText: 'push', newText: 'pr' }] }))
          .files,
      ).toEqual([
        { path: real, change: 'modify', linesAdded: 1, linesRemoved: 1, sha256Before: sha('on: push\n') },
      ]);
    }
    const created = await preview(client, 'write_file', {
      path: 'docs/link/workflows/new.yml',
      content: 'x\n',
    });
    expect(created.files).toEqual([
      {
        path: path.join(root, '.github', 'workflows', 'new.yml'),
        change: 'create',
        linesAdded: 1,
        linesRemoved: 0,
        sha256Before: null,
      },
    ]);
    expect(await readFile(real, 'utf8')).toBe('on: push\n');
  });

  it('a delete or move of a directory lists every file it takes; a new directory is a create', async () => {
    const { root, client } = await project(kind);
    const gh = path.join(root, '.github');
    const removed = await preview(client, 'delete', { path: 'docs/../.github', recursive: true });
    expect(removed.files).toEqual([
      {
        path: path.join(gh, 'logo.png'),
        change: 'delete',
        linesAdded: 0,
        linesRemoved: 0,
        binary: true,
        sha256Before: sha(logo),
      },
      {
        path: path.join(gh, 'workflows', 'ci.yml'),
        change: 'delete',
        linesAdded: 0,
        linesRemoved: 1,
        sha256Before: sha('on: push\n'),
      },
    ]);
    const moved = await preview(client, 'move', { source: '.github', destination: 'old-github' });
    expect(
      moved.files.map((file) => [
        path.relative(root, file.path),
        path.relative(root, file.from!),
        file.change,
      ]),
    ).toEqual([
      ['old-github/logo.png', '.github/logo.png', 'rename'],
      ['old-github/workflows/ci.yml', '.github/workflows/ci.yml', 'rename'],
    ]);
    // Deleting the link removes the link, never what it points to.
    expect((await preview(client, 'delete', { path: 'docs/link' })).files).toEqual([
      {
        path: path.join(root, 'docs', 'link'),
        change: 'delete',
        linesAdded: 0,
        linesRemoved: 0,
        sha256Before: sha('../.github'),
      },
    ]);
    expect((await preview(client, 'create_directory', { path: 'docs/link/new' })).files).toEqual([
      {
        path: path.join(gh, 'new'),
        change: 'create',
        linesAdded: 0,
        linesRemoved: 0,
        directory: true,
        sha256Before: null,
      },
    ]);
    expect((await preview(client, 'delete', { path: 'missing.txt' })).files).toEqual([]);
    expect(existsSync(path.join(gh, 'workflows', 'ci.yml'))).toBe(true);
  });

  it('a call bound to a preview is refused when the file changed in between, and nothing is written', async () => {
    const { root, client } = await project(kind);
    const file = path.join(root, 'notes', 'x y.yml');
    const args = { path: 'notes/x y.yml', content: 'mine\n' };
    const first = await preview(client, 'write_file', args);
    await writeFile(file, 'theirs\n');
    const refused = await callErr(client, 'write_file', args, { 'keel/expect-preview': first.binding });
    expect([refused.code, refused.hint, await readFile(file, 'utf8')]).toEqual([
      'PRECONDITION_FAILED',
      'Preview again (_meta["keel/preview"]: true), check the new effect, and send the call with the new binding; nothing was changed.',
      'theirs\n',
    ]);
    // The benign twin: preview again, apply with that binding.
    const second = await preview(client, 'write_file', args);
    expect(second.files[0]!.sha256Before).toBe(sha('theirs\n'));
    await callOk(client, 'write_file', args, { 'keel/expect-preview': second.binding });
    expect(await readFile(file, 'utf8')).toBe('mine\n');
  });

  it('tools/list marks every mutating tool as able to preview, and no read tool', async () => {
    const { client } = await project(kind);
    const tools = (await client.listTools()).tools as Array<{
      name: string;
      _meta?: Record<string, unknown>;
    }>;
    expect(
      tools
        .filter((tool) => tool._meta?.['keel/preview'] === true)
        .map((tool) => tool.name)
        .sort(),
    ).toEqual(['apply_patch', 'create_directory', 'delete', 'edit_file', 'move', 'write_file']);
  });
});
