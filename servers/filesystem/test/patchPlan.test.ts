import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createPathJail } from '@keel/kit';
import { tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { describePatch } from '../src/fs/patchPlan.js';
import { createFilesystemServer } from '../src/index.js';

/** What describePatch makes of a patch: one [action, oldName, newName, executable, hunks] per file. */
async function sections(patch: string) {
  const described = await describePatch(patch);
  if (!described.ok) return described.error;
  return described.value.map((file) => [
    file.action,
    file.oldName ?? null,
    file.newName ?? null,
    file.executable ?? null,
    file.patch.hunks.length,
  ]);
}

describe('describePatch: what each file section of a patch does', () => {
  it.each([
    [
      'a plain modify',
      '--- a/x.txt\n+++ b/x.txt\n@@ -1 +1 @@\n-a\n+b\n',
      [['modify', 'x.txt', 'x.txt', null, 1]],
    ],
    ['a create', '--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1 @@\n+n\n', [['create', null, 'new.txt', null, 1]]],
    ['a delete', '--- a/old.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-o\n', [['delete', 'old.txt', null, null, 1]]],
    [
      'a git header-only rename',
      'diff --git a/.github/ci.yml b/src/ci.yml\nsimilarity index 100%\nrename from .github/ci.yml\nrename to src/ci.yml\n',
      [['rename', '.github/ci.yml', 'src/ci.yml', null, 0]],
    ],
    [
      'a git copy',
      'diff --git a/a.txt b/b.txt\nsimilarity index 100%\ncopy from a.txt\ncopy to b.txt\n',
      [['copy', 'a.txt', 'b.txt', null, 0]],
    ],
    [
      'quoted names',
      '--- "a/x y.txt"\n+++ "b/x y.txt"\n@@ -1 +1 @@\n-a\n+b\n',
      [['modify', 'x y.txt', 'x y.txt', null, 1]],
    ],
    [
      'a quoted git rename with an escape',
      'diff --git "a/tab\\there" "b/plain"\nsimilarity index 100%\nrename from "tab\\there"\nrename to plain\n',
      [['rename', 'tab\there', 'plain', null, 0]],
    ],
    [
      'a header-only create of an empty file',
      'diff --git a/empty b/empty\nnew file mode 100644\nindex 0000000..e69de29\n',
      [['create', null, 'empty', false, 0]],
    ],
    [
      'a header-only delete',
      'diff --git a/gone b/gone\ndeleted file mode 100644\nindex e69de29..0000000\n',
      [['delete', 'gone', null, null, 0]],
    ],
    [
      'a mode change alone',
      'diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n',
      [['mode', 'run.sh', 'run.sh', true, 0]],
    ],
    [
      'a new executable file',
      'diff --git a/run.sh b/run.sh\nnew file mode 100755\n--- /dev/null\n+++ b/run.sh\n@@ -0,0 +1 @@\n+echo\n',
      [['create', null, 'run.sh', true, 1]],
    ],
    [
      'an index line alone changes nothing',
      'diff --git a/a b/a\nindex 1111111..2222222 100644\n--- a/b\n+++ b/b\n@@ -1 +1 @@\n-x\n+y\n',
      [['modify', 'b', 'b', null, 1]],
    ],
  ])('%s', async (_name, patch, expected) => {
    expect(await sections(patch)).toEqual(expected);
  });

  it.each([
    [
      'Binary files … differ',
      'diff --git a/logo.png b/logo.png\nindex 1..2 100644\nBinary files a/logo.png and b/logo.png differ\n',
      "patch for 'logo.png' is a binary diff",
    ],
    [
      'GIT binary patch (jsdiff reads past its data)',
      'diff --git a/logo.png b/logo.png\nnew file mode 100644\nindex 0000000..1111111\nGIT binary patch\nliteral 5\nMc${NkWMX3k00aO6LjV8(\n\n',
      "patch for 'logo.png' is a binary diff",
    ],
    [
      'a symlink mode',
      'diff --git a/link b/link\nnew file mode 120000\n--- /dev/null\n+++ b/link\n@@ -0,0 +1 @@\n+/etc/passwd\n\\ No newline at end of file\n',
      "patch for 'link' has mode 120000, a symlink",
    ],
    ['nothing at all', 'just some text\n', 'patch contains no file changes'],
  ])('refuses %s', async (_name, patch, message) => {
    expect(await sections(patch)).toMatchObject({ code: 'INVALID_ARGUMENT', message });
  });
});

describe('apply_patch carries out what the patch says', () => {
  async function server() {
    const root = await tempDir('keel-fs-patch-');
    return { root, fs: createFilesystemServer({ jail: await createPathJail([root]) }) };
  }
  const errorCode = (result: { _meta?: Record<string, unknown> | undefined }) =>
    (result._meta?.['keel/error'] as { code: string } | undefined)?.code;

  it('a mode change sets or clears the executable bits, and previews as mode', async () => {
    const { root, fs } = await server();
    await writeFile(path.join(root, 'run.sh'), 'echo\n');
    await chmod(path.join(root, 'run.sh'), 0o644);
    const patch = 'diff --git a/run.sh b/run.sh\nold mode 100644\nnew mode 100755\n';
    const previewed = await fs.callTool('apply_patch', { patch }, { meta: { 'keel/preview': true } });
    expect(
      (previewed.structuredContent as { preview: { files: Array<{ change: string }> } }).preview.files,
    ).toMatchObject([{ path: path.join(root, 'run.sh'), change: 'mode', linesAdded: 0, linesRemoved: 0 }]);
    expect((await fs.callTool('apply_patch', { patch })).structuredContent).toEqual({
      files: [{ path: 'run.sh', action: 'mode', hunks: 0, sha256: expect.stringMatching(/^[0-9a-f]{64}$/) }],
      dryRun: false,
    });
    expect(((await stat(path.join(root, 'run.sh'))).mode & 0o777).toString(8)).toBe('755');
  });

  it('a renamed script stays executable; a copy keeps its source', async () => {
    const { root, fs } = await server();
    await writeFile(path.join(root, 'a.sh'), 'echo a\n');
    await chmod(path.join(root, 'a.sh'), 0o755);
    await fs.callTool('apply_patch', {
      patch: 'diff --git a/a.sh b/b.sh\nsimilarity index 100%\ncopy from a.sh\ncopy to b.sh\n',
    });
    await fs.callTool('apply_patch', {
      patch: 'diff --git a/b.sh b/c.sh\nsimilarity index 100%\nrename from b.sh\nrename to c.sh\n',
    });
    expect([
      await readFile(path.join(root, 'a.sh'), 'utf8'),
      await readFile(path.join(root, 'c.sh'), 'utf8'),
      ((await stat(path.join(root, 'c.sh'))).mode & 0o777).toString(8),
    ]).toEqual(['echo a\n', 'echo a\n', '755']);
  });

  it('a header-only delete removes an empty file, and refuses one whose content it does not show', async () => {
    const { root, fs } = await server();
    await writeFile(path.join(root, 'empty'), '');
    await writeFile(path.join(root, 'full'), 'keep me\n');
    const del = (name: string) =>
      `diff --git a/${name} b/${name}\ndeleted file mode 100644\nindex e69de29..0000000\n`;
    expect((await fs.callTool('apply_patch', { patch: del('empty') })).isError).toBeUndefined();
    expect(errorCode(await fs.callTool('apply_patch', { patch: del('full') }))).toBe('CONFLICT');
    expect(
      errorCode(
        await fs.callTool('apply_patch', { patch: '--- a/full\n+++ /dev/null\n@@ -1 +0,0 @@\n-other\n' }),
      ),
    ).toBe('CONFLICT');
    expect(await readFile(path.join(root, 'full'), 'utf8')).toBe('keep me\n');
  });
});
