import { describe, expect, it } from 'vitest';
import { messageWithKey } from '../src/git/commit.js';
import { parseRawNumstat, parseRawWithPatch } from '../src/git/diff.js';
import { resolveGitOptions } from '../src/git/options.js';
import { driverOverrides } from '../src/git/repo.js';
import { protocolOf } from '../src/git/remote.js';
import { hardeningConfig } from '../src/git/runGit.js';
import { parsePorcelainV2 } from '../src/git/status.js';

describe('porcelain v2', () => {
  it('keeps paths with spaces whole and pairs renames with their origin', () => {
    const out = [
      '# branch.oid 1111111111111111111111111111111111111111',
      '# branch.head feat/x',
      '# branch.upstream origin/feat/x',
      '# branch.ab +2 -1',
      '1 .M N... 100644 100644 100644 aaa aaa dir/with space.txt',
      '2 R. N... 100644 100644 100644 bbb bbb R100 new name.txt',
      'old name.txt',
      'u UU N... 100644 100644 100644 100644 c1 c2 c3 both.txt',
      '? un tracked',
      '',
    ].join('\0');
    expect(parsePorcelainV2(out)).toEqual({
      branch: {
        head: 'feat/x',
        oid: '1111111111111111111111111111111111111111',
        upstream: 'origin/feat/x',
        ahead: 2,
        behind: 1,
      },
      entries: [
        { group: 'unstaged', path: 'dir/with space.txt', status: 'modified' },
        { group: 'staged', path: 'new name.txt', status: 'renamed', origPath: 'old name.txt' },
        { group: 'conflicted', path: 'both.txt', status: 'UU' },
        { group: 'untracked', path: 'un tracked', status: 'untracked' },
      ],
    });
  });

  it('reports a detached HEAD and an unborn branch as null', () => {
    expect(parsePorcelainV2('# branch.oid (initial)\0# branch.head (detached)\0').branch).toEqual({
      head: null,
      oid: null,
    });
  });
});

describe('diff summaries', () => {
  it('counts lines from the patch, marks binary files and renames', () => {
    const raw = [
      ':100644 100644 a b M',
      'a.txt',
      ':100644 100644 c d R090',
      'old.txt',
      'new.txt',
      ':100644 100644 e f M',
      'b.bin',
      '',
      '',
    ].join('\0');
    const patch = [
      'diff --git a/a.txt b/a.txt',
      'index a..b 100644',
      '--- a/a.txt',
      '+++ b/a.txt',
      '@@ -1,2 +1,2 @@',
      ' keep',
      '--- removed line that looks like a header',
      '+++ added line that looks like a header',
      'diff --git a/old.txt b/new.txt',
      'similarity index 90%',
      'rename from old.txt',
      'rename to new.txt',
      '@@ -1 +1,2 @@',
      '+x',
      'diff --git a/b.bin b/b.bin',
      'index e..f 100644',
      'Binary files a/b.bin and b/b.bin differ',
      '',
    ].join('\n');
    expect(parseRawWithPatch(Buffer.from(`${raw}${patch}`))).toEqual({
      files: [
        { path: 'a.txt', status: 'modified', added: 1, deleted: 1, binary: false },
        { path: 'new.txt', oldPath: 'old.txt', status: 'renamed', added: 1, deleted: 0, binary: false },
        { path: 'b.bin', status: 'modified', added: null, deleted: null, binary: true },
      ],
      patch: Buffer.from(patch),
    });
  });

  it('gives up on combined (unmerged) records so the caller asks git for numstat', () => {
    expect(parseRawWithPatch(Buffer.from(':: 100644 100644 100644 a b 0000 MM\0x.txt\0'))).toBeUndefined();
    expect(
      parseRawNumstat(
        [
          ':000000 100644 0 0 U',
          'x.txt',
          ':100644 100644 b 0 M',
          'x.txt',
          '0\t0\tx.txt',
          '4\t0\tx.txt',
          '',
        ].join('\0'),
      ),
    ).toEqual([{ path: 'x.txt', status: 'unmerged', added: null, deleted: null, binary: false }]);
  });
});

describe('commit trailers', () => {
  it('adds the key as its own trailer block, or joins an existing one', () => {
    expect(messageWithKey('Fix it\n', undefined)).toBe('Fix it\n');
    expect(messageWithKey('Fix it', 'k1')).toBe('Fix it\n\nKeel-Idempotency-Key: k1\n');
    expect(messageWithKey('Fix it\n\nBecause.\n\nSigned-off-by: A <a@b>\n', 'k1')).toBe(
      'Fix it\n\nBecause.\n\nSigned-off-by: A <a@b>\nKeel-Idempotency-Key: k1\n',
    );
    expect(messageWithKey('Subject: with colon', 'k1')).toBe(
      'Subject: with colon\n\nKeel-Idempotency-Key: k1\n',
    );
  });
});

describe('transports and config', () => {
  it('classifies URLs the way git does', () => {
    expect(
      [
        'https://h/r.git',
        'ssh://h/r',
        'git@h:r.git',
        'file:///x/r',
        '/abs/r',
        './rel',
        'ext::sh -c x',
        'fd::3',
        'foo://x',
        'c:/x',
        'git+ssh://h/r',
        'http://h/r',
      ].map(protocolOf),
    ).toEqual(['https', 'ssh', 'ssh', 'file', 'file', 'file', 'ext', 'other', 'other', 'ssh', 'ssh', 'http']);
  });

  it('disarms every driver the repository names and refuses names it cannot override', () => {
    expect(
      driverOverrides([
        'core.bare',
        'filter.lfs.process',
        'diff.pdf.textconv',
        'merge.ours.driver',
        'remote.origin.url',
      ]),
    ).toEqual({
      ok: true,
      value: [
        'filter.lfs.clean=',
        'filter.lfs.smudge=',
        'filter.lfs.process=',
        'filter.lfs.required=false',
        'diff.pdf.textconv=',
        'diff.pdf.command=',
        'merge.ours.driver=',
      ],
    });
    expect(driverOverrides(['filter.a=b.clean']).ok).toBe(false);
  });

  it('never allows ext and keeps hooks and global attributes off unless asked', () => {
    const strict = hardeningConfig(resolveGitOptions({ allowProtocols: ['https'] }));
    expect(strict.filter((pair) => pair.startsWith('protocol.'))).toEqual([
      'protocol.allow=never',
      'protocol.ext.allow=never',
      'protocol.https.allow=always',
    ]);
    expect(strict).toContain('core.hooksPath=/dev/null');
    const open = hardeningConfig(resolveGitOptions({ enableHooks: true, useGlobalConfig: true }));
    expect(
      open.some((pair) => pair.startsWith('core.hooksPath') || pair.startsWith('core.attributesFile')),
    ).toBe(false);
  });
});
