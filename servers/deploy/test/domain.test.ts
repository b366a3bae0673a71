import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { chmod, mkdir, readlink, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { linksLeaving } from '../src/build/links.js';
import { diffManifests, manifestOf, scanTree, type ManifestEntry } from '../src/build/manifest.js';
import { quotedName, shownName } from '../src/text/names.js';
import { parseTtl } from '../src/cli/approvalCommands.js';
import { newNonce, signApproval, verifyApproval, type ApprovalPayload } from '@keel/kit/approval';
import { DirectoryTarget } from '../src/target/directory.js';

const run = promisify(execFile);

describe('build manifests', () => {
  it('hashes files, keeps symlinks as links and is the same for the same tree', async () => {
    const dir = await tempDir('keel-manifest-');
    await mkdir(path.join(dir, 'a'));
    await writeFile(path.join(dir, 'a', 'x.txt'), 'x');
    await symlink('a/x.txt', path.join(dir, 'link'));
    const manifest = await scanTree(dir, 100);
    expect(
      manifest.entries.map((entry) => [entry.path, entry.kind, entry.size, entry.target ?? null]),
    ).toEqual([
      ['a', 'dir', 0, null],
      ['a/x.txt', 'file', 1, null],
      ['link', 'symlink', 0, 'a/x.txt'],
    ]);
    expect(manifest.entries[1]!.sha256).toBe(
      '2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881',
    );
    expect([manifest.files, manifest.bytes, (await scanTree(dir, 100)).hash]).toEqual([2, 1, manifest.hash]);
  });

  it('refuses more entries than the cap, and special files', async () => {
    const dir = await tempDir('keel-manifest-');
    for (const name of ['1', '2', '3']) await writeFile(path.join(dir, name), name);
    await expect(scanTree(dir, 2)).rejects.toMatchObject({ code: 'RESOURCE_LIMIT' });
    await run('mkfifo', [path.join(dir, 'pipe')]);
    await expect(scanTree(dir, 100)).rejects.toMatchObject({ code: 'PRECONDITION_FAILED' });
  });

  it('counts a mode change as a change', async () => {
    const dir = await tempDir('keel-manifest-');
    await writeFile(path.join(dir, 'run.sh'), '#!/bin/sh\n', { mode: 0o644 });
    const before = await scanTree(dir, 10);
    await chmod(path.join(dir, 'run.sh'), 0o755);
    expect(diffManifests(before, await scanTree(dir, 10)).changed.paths).toEqual(['run.sh']);
  });

  it('a release keeps the build symlinks as symlinks', async () => {
    const base = await tempDir('keel-manifest-');
    const build = path.join(base, 'build');
    await mkdir(build);
    await writeFile(path.join(build, 'index.html'), 'hi');
    await symlink('index.html', path.join(build, 'home.html'));
    const manifest = await scanTree(build, 10);
    const target = new DirectoryTarget(path.join(base, 'deploy'));
    await target.prepare({
      releaseId: 'r1',
      build,
      manifest,
      base: null,
      signal: new AbortController().signal,
    });
    expect(await readlink(path.join(base, 'deploy', 'releases', 'r1', 'home.html'))).toBe('index.html');
    expect(await target.manifest('r1')).toEqual(manifest);
  });
});

describe('approval tokens', () => {
  const keys = generateKeyPairSync('ed25519');
  const payload: ApprovalPayload = {
    tool: 'apply_deploy',
    environment: 'production',
    planId: 'plan-1',
    planHash: 'a'.repeat(64),
    approver: 'alice',
    issuedAt: 1000,
    expiresAt: 2000,
    nonce: newNonce(),
  };
  const expected = { tool: 'apply_deploy', environment: 'production', planHash: 'a'.repeat(64), now: 1500 };

  it('verifies a signed token and names the first reason a token fails', () => {
    const token = signApproval(payload, keys.privateKey);
    expect(verifyApproval(token, [keys.publicKey], expected)).toEqual({ ok: true, payload });
    expect(verifyApproval(token, [], expected)).toEqual({ ok: false, reason: 'forged' });
    expect(verifyApproval(token, [keys.publicKey], { ...expected, now: 2000 }).ok).toBe(false);
    expect(verifyApproval(42, [keys.publicKey], expected)).toEqual({ ok: false, reason: 'malformed' });
    // Changing one byte of the payload breaks the signature.
    const [prefix, body, signature] = [
      token.slice(0, 17),
      token.slice(17, token.lastIndexOf('.')),
      token.slice(token.lastIndexOf('.')),
    ];
    const altered = Buffer.from(JSON.stringify({ ...payload, approver: 'mallory' })).toString('base64url');
    expect(body).not.toBe(altered);
    expect(verifyApproval(`${prefix}${altered}${signature}`, [keys.publicKey], expected)).toEqual({
      ok: false,
      reason: 'forged',
    });
  });

  it('parses token lifetimes and refuses the ones it cannot honour', () => {
    expect([parseTtl('90s'), parseTtl('15m'), parseTtl('24h')]).toEqual([90_000, 900_000, 86_400_000]);
    expect(() => parseTtl('25h')).toThrow("--ttl '25h' must be more than 0 and at most 24h");
    expect(() => parseTtl('0m')).toThrow("--ttl '0m' must be more than 0 and at most 24h");
    expect(() => parseTtl('soon')).toThrow("--ttl 'soon' must look like 90s, 15m or 2h");
  });
});

describe('build links', () => {
  const tree = (links: Record<string, string>, dirs: string[] = []) =>
    manifestOf([
      ...dirs.map((dir): ManifestEntry => ({ path: dir, kind: 'dir', size: 0, mode: 0o755, sha256: '' })),
      { path: 'index.html', kind: 'file', size: 1, mode: 0o644, sha256: 'x' },
      ...Object.entries(links).map(([from, target]): ManifestEntry => ({
        path: from,
        kind: 'symlink',
        size: 0,
        mode: 0,
        sha256: '',
        target,
      })),
    ]);

  it('finds the links that leave the build, resolved through the build’s own links as the kernel would', () => {
    expect(
      linksLeaving(
        tree(
          {
            abs: '/etc/passwd',
            up: '../x',
            deep: 'a/../../x',
            'a/top': '..',
            through: 'a/top/../x',
            missing: 'nope/../../x',
            inside: 'a/top/index.html',
            dot: '.',
            loop1: 'loop2',
            loop2: 'loop1',
          },
          ['a'],
        ),
      ),
    ).toEqual([
      { path: 'abs', target: '/etc/passwd', leaves: 'absolute' },
      { path: 'deep', target: 'a/../../x', leaves: 'outside' },
      { path: 'missing', target: 'nope/../../x', leaves: 'outside' },
      { path: 'through', target: 'a/top/../x', leaves: 'outside' },
      { path: 'up', target: '../x', leaves: 'outside' },
    ]);
  });
});

describe('names in text output', () => {
  it('shows a plain name as it is and anything that could break the text as an escaped JSON literal', () => {
    expect([
      shownName('assets/logo.svg'),
      shownName("it's ok.txt"),
      shownName('a\nb'),
      shownName('tab\there'),
      shownName('evil\u202etxt.exe'),
      shownName('line\u2028sep'),
      shownName('del\u007f'),
    ]).toEqual([
      'assets/logo.svg',
      "it's ok.txt",
      '"a\\nb"',
      '"tab\\there"',
      '"evil\\u202etxt.exe"',
      '"line\\u2028sep"',
      '"del\\u007f"',
    ]);
    expect([quotedName('app.js'), quotedName('a\nb')]).toEqual(["'app.js'", '"a\\nb"']);
  });
});
