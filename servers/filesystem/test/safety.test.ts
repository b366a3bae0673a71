import { constants } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createPathJail } from '@keel/kit';
import { connectStdio, tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { atomicWrite, openSyncChecked, readSmallFileSync, readWhole } from '../src/fs/files.js';
import { callErr, callOk, connect, fsBin, kinds, ripgrepOnPath } from './helpers.js';

describe.each(kinds)('policy (%s client)', (kind) => {
  it('refuses writes into .git/ by default, through every writing tool', async () => {
    const root = await tempDir();
    await mkdir(path.join(root, '.git', 'hooks'), { recursive: true });
    await writeFile(path.join(root, '.git', 'config'), '[core]\n');
    await writeFile(path.join(root, 'a.txt'), 'a\n');
    const client = await connect([root], kind);
    const calls: Array<[string, Record<string, unknown>]> = [
      ['write_file', { path: '.git/config', content: '[core]\n\tfsmonitor = evil\n' }],
      ['write_file', { path: '.git/hooks/pre-commit', content: '#!/bin/sh\n' }],
      [
        'edit_file',
        { path: '.git/config', edits: [{ oldText: '[core]', newText: '[core]\n\thooksPath = /tmp' }] },
      ],
      ['create_directory', { path: 'vendor/.git' }],
      ['move', { source: 'a.txt', destination: '.git/hooks/post-checkout' }],
      ['move', { source: '.git/config', destination: 'config' }],
      ['delete', { path: '.git', recursive: true }],
      ['apply_patch', { patch: '--- /dev/null\n+++ b/.git/hooks/pre-push\n@@ -0,0 +1,1 @@\n+#!/bin/sh\n' }],
      ['write_file', { path: 'sub/.GIT/config', content: 'x', createParents: true }],
    ];
    for (const [tool, args] of calls) {
      const error = await callErr(client, tool, args);
      expect([tool, error.code]).toEqual([tool, 'PERMISSION_DENIED']);
    }
    expect(await readFile(path.join(root, '.git', 'config'), 'utf8')).toBe('[core]\n');
    expect(await readdir(path.join(root, '.git', 'hooks'))).toEqual([]);
    expect((await readdir(root)).sort()).toEqual(['.git', 'a.txt']);
    // Reading .git is fine.
    expect(await callOk(client, 'read_file', { path: '.git/config' })).toMatchObject({ content: '[core]\n' });
  });

  it('--allow-git-writes lets them through', async () => {
    const root = await tempDir();
    await mkdir(path.join(root, '.git'));
    const client = await connect([root], kind, ['--allow-git-writes']);
    await callOk(client, 'write_file', { path: '.git/config', content: '[core]\n' });
    expect(await readFile(path.join(root, '.git', 'config'), 'utf8')).toBe('[core]\n');
  });

  it('deny globs hide paths from every tool', async () => {
    const root = await tempDir();
    await mkdir(path.join(root, 'secrets'));
    await writeFile(path.join(root, '.env'), 'TOKEN=abc\n');
    await writeFile(path.join(root, 'secrets', 'key.txt'), 'TOKEN=def\n');
    await writeFile(path.join(root, 'ok.txt'), 'TOKEN=public\n');
    const client = await connect([root], kind, ['--deny', '**/.env', '--deny', 'secrets']);
    expect(await callErr(client, 'read_file', { path: '.env' })).toEqual({
      code: 'PERMISSION_DENIED',
      message: "path '.env' is denied by the server's deny glob '**/.env'",
      hint: 'This path is off limits by server configuration (--deny); work with other files.',
      retryable: false,
      details: { path: '.env', glob: '**/.env' },
    });
    expect((await callErr(client, 'read_file', { path: 'secrets/key.txt' })).code).toBe('PERMISSION_DENIED');
    expect((await callErr(client, 'write_file', { path: 'secrets/new.txt', content: 'x' })).code).toBe(
      'PERMISSION_DENIED',
    );
    expect((await callErr(client, 'delete', { path: '.env' })).code).toBe('PERMISSION_DENIED');
    expect((await callErr(client, 'move', { source: 'ok.txt', destination: 'secrets/ok.txt' })).code).toBe(
      'PERMISSION_DENIED',
    );
    const listed = await callOk<{ entries: Array<{ name: string }> }>(client, 'list_directory', {});
    expect(listed.entries.map((e) => e.name)).toEqual(['ok.txt']);
    const found = await callOk<{ matches: Array<{ path: string }> }>(client, 'find_files', {
      pattern: '**',
      hidden: true,
    });
    expect(found.matches.map((m) => m.path)).toEqual(['ok.txt']);
    const searched = await callOk<{ matches: Array<{ path: string }> }>(client, 'search_text', {
      pattern: 'TOKEN',
      hidden: true,
    });
    expect(searched.matches.map((m) => m.path)).toEqual(['ok.txt']);
    // A denied path among several refuses the call (the server's prepare step holds every declared
    // path to the policy); a missing one is still reported per file.
    expect(await callErr(client, 'read_files', { paths: ['ok.txt', '.env'] })).toMatchObject({
      code: 'PERMISSION_DENIED',
      details: { path: '.env', glob: '**/.env' },
    });
    const files = await callOk<{ files: Array<{ ok: boolean }> }>(client, 'read_files', {
      paths: ['ok.txt', 'missing.txt'],
    });
    expect(files.files.map((f) => f.ok)).toEqual([true, false]);
  });
});

describe('writes under contention and crashes', () => {
  it("concurrent writes to one file leave exactly one writer's content, and no temp files", async () => {
    const root = await tempDir();
    const client = await connect([root]);
    const contents = Array.from({ length: 10 }, (_, i) => String.fromCharCode(97 + i).repeat(200_000));
    await Promise.all(
      contents.map((content) => callOk(client, 'write_file', { path: 'shared.txt', content })),
    );
    const final = await readFile(path.join(root, 'shared.txt'), 'utf8');
    expect(contents).toContain(final);
    expect(await readdir(root)).toEqual(['shared.txt']);
  });

  it('kill -9 during a large write leaves the old or the new content, never a torn file', async () => {
    const root = await tempDir();
    // Under the SDK's 10 MB stdio message cap.
    const oldContent = 'o'.repeat(9 * 1024 * 1024);
    const newContent = 'n'.repeat(9 * 1024 * 1024);
    const isTemp = (name: string) => /^\.big\.txt\.keel-[0-9a-f]{12}\.tmp$/.test(name);
    let landedMidWrite = 0;
    for (let attempt = 0; attempt < 20 && landedMidWrite === 0; attempt++) {
      await writeFile(path.join(root, 'big.txt'), oldContent);
      for (const name of await readdir(root)) if (isTemp(name)) await rm(path.join(root, name));
      const client = await connectStdio(await fsBin([root]));
      let settled = false;
      const call = client
        .callTool({ name: 'write_file', arguments: { path: 'big.txt', content: newContent } })
        .catch(() => undefined)
        .finally(() => {
          settled = true;
        });
      // Kill the moment the temp file exists: the write has started and not yet been renamed in. Wait
      // on the call, not on a count of polls: on a slow machine the server spends seconds receiving
      // 9 MiB and planning the write before the temp file appears.
      while (!settled && !(await readdir(root)).some(isTemp)) await new Promise(setImmediate);
      process.kill(client.pid!, 'SIGKILL');
      await call;
      const after = await readFile(path.join(root, 'big.txt'), 'utf8');
      const verdict =
        after === oldContent ? 'old' : after === newContent ? 'new' : `torn (${after.length} bytes)`;
      expect(verdict).toMatch(/^(old|new)$/);
      const leftovers = (await readdir(root)).filter((name) => name !== 'big.txt');
      // A temp file may stay behind after a kill; it is never the target, and nothing else appears.
      expect(leftovers.filter((name) => !isTemp(name))).toEqual([]);
      // The kill landed mid-write when the temp file is still there and the target is untouched.
      if (verdict === 'old' && leftovers.length === 1) landedMidWrite++;
    }
    // The event this test is about happened: a kill between the temp file's creation and the rename.
    expect(landedMidWrite).toBeGreaterThan(0);
  });
});

describe('a symlink swapped in after the check', () => {
  async function layout() {
    const base = await tempDir('keel-fs-swap-');
    const root = path.join(base, 'root');
    await mkdir(path.join(root, 'dir'), { recursive: true });
    await mkdir(path.join(base, 'outside'));
    await writeFile(path.join(base, 'outside', 'secret.txt'), 'secret\n');
    await writeFile(path.join(root, 'file.txt'), 'inside\n');
    await writeFile(path.join(root, 'dir', 'secret.txt'), 'inside\n');
    return { base, root, jail: await createPathJail([root]) };
  }

  it('cannot make a read escape (file swapped for a link)', async () => {
    const { base, root, jail } = await layout();
    const resolved = await jail.resolve('file.txt');
    if (!resolved.ok) throw new Error('resolve failed');
    await rm(path.join(root, 'file.txt'));
    await symlink(path.join(base, 'outside', 'secret.txt'), path.join(root, 'file.txt'));
    const read = await readWhole(jail, resolved.value, 'file.txt');
    expect(read.ok ? read.value.toString() : read.error.code).toBe('OUTSIDE_ROOTS');
  });

  it('cannot make a synchronous read escape (file or parent swapped for a link)', async () => {
    const { base, root, jail } = await layout();
    await rm(path.join(root, 'file.txt'));
    await symlink(path.join(base, 'outside', 'secret.txt'), path.join(root, 'file.txt'));
    expect(openSyncChecked(jail, path.join(root, 'file.txt'))).toMatchObject({
      refused: { code: 'OUTSIDE_ROOTS' },
    });
    await rm(path.join(root, 'dir'), { recursive: true });
    await symlink(path.join(base, 'outside'), path.join(root, 'dir'));
    expect(openSyncChecked(jail, path.join(root, 'dir', 'secret.txt'))).toMatchObject({
      refused: { code: 'OUTSIDE_ROOTS' },
    });
    expect(readSmallFileSync(jail, path.join(root, 'dir', 'secret.txt'), 1000)).toEqual({
      kind: 'unreadable',
    });
  });

  it('cannot make a write escape (parent directory swapped for a link)', async () => {
    const { base, root, jail } = await layout();
    const resolved = await jail.resolve('dir/secret.txt');
    if (!resolved.ok) throw new Error('resolve failed');
    await rm(path.join(root, 'dir'), { recursive: true });
    await symlink(path.join(base, 'outside'), path.join(root, 'dir'));
    const written = await atomicWrite(jail, resolved.value, Buffer.from('owned\n'), 'dir/secret.txt', {
      mode: 'overwrite',
    });
    expect(written.ok ? 'written' : written.error.code).toBe('OUTSIDE_ROOTS');
    expect(await readFile(path.join(base, 'outside', 'secret.txt'), 'utf8')).toBe('secret\n');
    expect(await readdir(path.join(base, 'outside'))).toEqual(['secret.txt']);
  });

  it('a write whose target became a link replaces the link, not what it points to', async () => {
    const { base, root, jail } = await layout();
    const resolved = await jail.resolve('file.txt');
    if (!resolved.ok) throw new Error('resolve failed');
    await rm(path.join(root, 'file.txt'));
    await symlink(path.join(base, 'outside', 'secret.txt'), path.join(root, 'file.txt'));
    const written = await atomicWrite(jail, resolved.value, Buffer.from('mine\n'), 'file.txt', {
      mode: 'overwrite',
    });
    expect(written.ok).toBe(true);
    expect(await readFile(path.join(base, 'outside', 'secret.txt'), 'utf8')).toBe('secret\n');
    expect(await readFile(path.join(root, 'file.txt'), 'utf8')).toBe('mine\n');
  });

  it.each(kinds)(
    'over stdio, racing swaps never leak or change the outside file (%s client)',
    async (kind) => {
      const { base, root } = await layout();
      const client = await connect([root], kind);
      const target = path.join(root, 'file.txt');
      const secret = path.join(base, 'outside', 'secret.txt');
      let stop = false;
      // Flip file.txt between a real file and a link out, as fast as the event loop allows.
      const swapper = (async () => {
        let flips = 0;
        while (!stop) {
          const staged = path.join(root, `.stage-${flips % 2}`);
          if (flips % 2 === 0) await symlink(secret, staged);
          else await writeFile(staged, 'inside\n');
          await rename(staged, target);
          flips++;
          await sleep(0);
        }
        return flips;
      })();
      const seen = new Set<string>();
      for (let i = 0; i < 150; i++) {
        const read = await client.callTool({ name: 'read_file', arguments: { path: 'file.txt' } });
        seen.add(
          read.isError === true
            ? ((read._meta?.['keel/error'] as { code: string } | undefined)?.code ?? 'error without a code')
            : String(read.structuredContent?.['content']),
        );
        await client.callTool({ name: 'write_file', arguments: { path: 'file.txt', content: 'written\n' } });
      }
      stop = true;
      expect(await swapper).toBeGreaterThan(0);
      expect(seen.has('secret\n')).toBe(false);
      expect(await readFile(secret, 'utf8')).toBe('secret\n');
      expect(await readdir(path.join(base, 'outside'))).toEqual(['secret.txt']);
      for (const name of await readdir(root)) await unlink(path.join(root, name)).catch(() => undefined);
    },
  );
});

describe('budgets hold on huge inputs', () => {
  it('a 20 MB file, a 10k-entry directory and a wide tree stay within their budgets', async () => {
    const root = await tempDir();
    const line = `${'z'.repeat(99)}\n`;
    await writeFile(path.join(root, 'huge.log'), line.repeat(200_000));
    await mkdir(path.join(root, 'many'));
    await Promise.all(
      Array.from({ length: 10_000 }, (_, i) => writeFile(path.join(root, 'many', `f${i}.txt`), 'zz\n')),
    );
    const client = await connect([root]);
    const read = await client.callTool({ name: 'read_file', arguments: { path: 'huge.log' } });
    expect(read.structuredContent).toMatchObject({
      size: 20_000_000,
      startLine: 1,
      endLine: 655,
      truncated: { limit: 65_536, unit: 'bytes', total: 20_000_000 },
    });
    expect((read.structuredContent!['content'] as string).length).toBe(65_500);
    const tail = await callOk(client, 'read_file', { path: 'huge.log', startLine: 199_999 });
    expect(tail).toMatchObject({ content: line.repeat(2), startLine: 199_999, endLine: 200_000 });
    expect(tail).not.toHaveProperty('truncated');
    const end = await callOk(client, 'read_file', { path: 'huge.log', tailLines: 3 });
    expect(end).toMatchObject({ content: line.repeat(3), startByte: 20_000_000 - 300, endByte: 20_000_000 });
    expect(end).not.toHaveProperty('startLine');
    const list = await callOk<{ entries: unknown[]; total: number }>(client, 'list_directory', {
      path: 'many',
    });
    expect([list.entries.length, list.total]).toEqual([200, 10_000]);
    const tree = await client.callTool({ name: 'tree', arguments: {} });
    expect((tree.structuredContent!['entries'] as unknown[]).length).toBe(400);
    expect(Buffer.byteLength(JSON.stringify(tree))).toBeLessThan(64 * 1024);
    // Both searches stop when full; the JavaScript one also counts the 20 MB file it passed over
    // (ripgrep's, the default when rg is on the PATH, reports no per-file counts).
    const searches = [];
    for (const searcher of [client, await connect([root], 'v2', ['--no-ripgrep'])]) {
      const search = await callOk<{ matches: unknown[]; skipped?: { tooLarge: number }; stoppedBy: string }>(
        searcher,
        'search_text',
        { pattern: 'z' },
      );
      searches.push([search.matches.length, search.stoppedBy, search.skipped?.tooLarge]);
    }
    expect(searches).toEqual([
      [100, 'maxMatches', ripgrepOnPath ? undefined : 1],
      [100, 'maxMatches', 1],
    ]);
    void constants;
  });
});
