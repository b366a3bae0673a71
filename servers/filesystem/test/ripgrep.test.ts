import { chmod, mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { tempDir } from '@keel/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { callOk, connect, ripgrepOnPath, type Client } from './helpers.js';

// search_text's native path: ripgrep picks the files, Keel reads and matches them. Under CI a
// missing rg fails the run instead of skipping these tests (.ci/run installs Debian's ripgrep).
if (!ripgrepOnPath && process.env['CI'] === 'true')
  throw new Error('rg is not on the PATH: .ci/run installs ripgrep, and the native search tests need it');

interface Page {
  matches: Array<{ path: string; line: number; column: number; text: string }>;
  filesSearched?: number;
  filesWithMatches: number;
  skipped?: unknown;
  stoppedBy?: string;
  truncated?: { nextCursor?: string };
}

/** Every page of a search, following cursors; cursors are left out (each server signs its own). */
async function pages(client: Client, args: Record<string, unknown>): Promise<unknown[]> {
  const out: unknown[] = [];
  let cursor: string | undefined;
  do {
    const page = await callOk<Page>(client, 'search_text', {
      ...args,
      ...(cursor === undefined ? {} : { cursor }),
    });
    const { truncated, filesSearched, skipped, ...rest } = page;
    void filesSearched;
    void skipped;
    out.push({ ...rest, more: truncated?.nextCursor !== undefined });
    cursor = truncated?.nextCursor;
  } while (cursor !== undefined && out.length < 200);
  return out;
}

const needle = 'NEEDLE';

/** A server whose search_text hands every walk to a stand-in for rg: a shell script with this body. */
async function withFakeRipgrep(root: string, body: string): Promise<Client> {
  const file = path.join(await tempDir(), 'rg');
  await writeFile(file, `#!/bin/sh\n${body}\n`);
  await chmod(file, 0o755);
  return await connect([root], 'v2', ['--ripgrep', file, '--ripgrep-min-files', '0']);
}

/** A tree with everything the walk treats specially, each holding the needle, and links out of it. */
async function tree(): Promise<string> {
  const outside = await tempDir();
  await writeFile(path.join(outside, 'secret.txt'), `${needle} outside\n`);
  const root = await tempDir();
  const line = (n: number) => `line ${n} ${needle} here\n`;
  const files: Record<string, string | Buffer> = {
    '.gitignore': 'ignored/\n*.log\n!kept.log\n',
    'a.txt': `${line(1)}plain\r\n${needle} crlf\r\n${'x'.repeat(900)}${needle}${'y'.repeat(900)}\n`,
    'a-b.txt': line(1),
    'a/x.txt': Array.from({ length: 30 }, (_, i) => (i % 3 === 0 ? line(i) : 'miss\n')).join(''),
    'a/b/c/deep.txt': line(1).repeat(7),
    'B.txt': line(2),
    'é/ü.txt': line(3),
    'needle-lower.txt': 'needle in lower case\nNeedle mixed\n',
    'ignored/x.txt': line(1),
    'debug.log': line(1),
    'kept.log': line(1),
    'sub/.gitignore': 'local.txt\n',
    'sub/local.txt': line(1),
    'sub/other.txt': line(1),
    '.hidden/h.txt': line(1),
    '.dotfile': line(1),
    '.git/config': line(1),
    'secrets/key.txt': line(1),
    'own/state.txt': line(1),
    '.x.keel-0123456789ab.tmp': line(1),
    'bin/head.bin': Buffer.concat([Buffer.from(needle), Buffer.from([0, 1, 2])]),
    // NUL past the first 8 KiB: text to Keel (git's rule), so its needle is found.
    'bin/late-nul.txt': Buffer.concat([
      Buffer.from('z'.repeat(9000)),
      Buffer.from([0]),
      Buffer.from(`\n${needle}\n`),
    ]),
    'big/over.txt': `${needle}\n${'w'.repeat(3000)}\n`,
    'big/exact.txt': `${needle}\n${'w'.repeat(1000 - needle.length - 2)}\n`,
    'latin1.txt': Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, ...Buffer.from(needle)]),
  };
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, name)), { recursive: true });
    await writeFile(path.join(root, name), content);
  }
  // Links, in and out of the root: never followed by the walk, nor by ripgrep.
  await symlink(path.join(outside, 'secret.txt'), path.join(root, 'link-out.txt'));
  await symlink(outside, path.join(root, 'dir-out'));
  await symlink(path.join(root, 'a-b.txt'), path.join(root, 'link-in.txt'));
  await symlink(path.join(root, 'a'), path.join(root, 'dir-in'));
  return root;
}

describe.skipIf(!ripgrepOnPath)('search_text through ripgrep', () => {
  const clients: Client[] = [];
  afterAll(async () => {
    for (const client of clients) await client.close();
  });

  async function both(root: string, flags: string[] = []): Promise<{ rg: Client; js: Client }> {
    // Every walk hands over to ripgrep at once, however small the tree.
    const rg = await connect([root], 'v2', [...flags, '--ripgrep-min-files', '0']);
    const js = await connect([root], 'v2', [...flags, '--no-ripgrep']);
    clients.push(rg, js);
    return { rg, js };
  }

  it('gives the same pages as the JavaScript search: order, lines, columns, cuts, truncation, cursors', async () => {
    const root = await tree();
    const { rg, js } = await both(root, ['--deny', 'secrets/**', '--deny-path', path.join(root, 'own')]);
    const queries: Array<Record<string, unknown>> = [
      { pattern: needle },
      { pattern: needle, literal: true, maxFileBytes: 1000 },
      { pattern: needle, maxMatches: 1 },
      { pattern: needle, maxMatches: 3, maxMatchesPerFile: 2 },
      { pattern: needle, maxMatches: 4, contextLines: 1 },
      { pattern: 'needle', caseSensitive: false, maxMatches: 5 },
      { pattern: needle, hidden: true, maxMatches: 7 },
      { pattern: needle, gitignore: false, maxMatches: 6 },
      { pattern: needle, hidden: true, gitignore: false },
      { pattern: needle, include: ['*.txt'], exclude: ['a'], maxMatches: 2 },
      { pattern: needle, path: 'a', maxMatches: 2 },
      { pattern: 'café', literal: true },
      { pattern: 'x + y', literal: true },
      { pattern: `${needle} crlf` },
    ];
    const native: unknown[] = [];
    const walked: unknown[] = [];
    for (const query of queries) {
      native.push({ query, pages: await pages(rg, query) });
      walked.push({ query, pages: await pages(js, query) });
    }
    expect(native).toEqual(walked);
    // The first query in full, so the comparison above cannot pass on two empty answers.
    const first = await callOk<Page>(rg, 'search_text', { pattern: needle, maxMatches: 2000 });
    expect(first.matches.map((m) => `${m.path}:${m.line}:${m.column}`)).toEqual([
      'B.txt:1:8',
      'a/b/c/deep.txt:1:8',
      'a/b/c/deep.txt:2:8',
      'a/b/c/deep.txt:3:8',
      'a/b/c/deep.txt:4:8',
      'a/b/c/deep.txt:5:8',
      'a/b/c/deep.txt:6:8',
      'a/b/c/deep.txt:7:8',
      'a/x.txt:1:8',
      'a/x.txt:4:8',
      'a/x.txt:7:8',
      'a/x.txt:10:8',
      'a/x.txt:13:9',
      'a/x.txt:16:9',
      'a/x.txt:19:9',
      'a/x.txt:22:9',
      'a/x.txt:25:9',
      'a/x.txt:28:9',
      'a-b.txt:1:8',
      'a.txt:1:8',
      'a.txt:3:1',
      'a.txt:4:901',
      'big/exact.txt:1:1',
      'big/over.txt:1:1',
      'bin/late-nul.txt:2:1',
      'kept.log:1:8',
      'latin1.txt:1:6',
      'sub/other.txt:1:8',
      'é/ü.txt:1:8',
    ]);
    // The native path is the one that answered: it reports no per-file counts.
    expect([first.filesSearched, first.skipped, first.filesWithMatches]).toEqual([undefined, undefined, 12]);
  });

  it('never shows denied files, Keel’s own files, .git or what lies behind a link', async () => {
    const root = await tree();
    const { rg } = await both(root, [
      '--deny',
      'secrets/**',
      '--deny',
      '**/*.bin',
      '--deny-path',
      path.join(root, 'own'),
    ]);
    const out = await callOk<Page>(rg, 'search_text', {
      pattern: needle,
      hidden: true,
      gitignore: false,
      maxMatches: 2000,
    });
    const shown = [...new Set(out.matches.map((m) => m.path))];
    expect(shown).toEqual([
      '.dotfile',
      '.git/config',
      '.hidden/h.txt',
      'B.txt',
      'a/b/c/deep.txt',
      'a/x.txt',
      'a-b.txt',
      'a.txt',
      'big/exact.txt',
      'big/over.txt',
      'bin/late-nul.txt',
      'debug.log',
      'ignored/x.txt',
      'kept.log',
      'latin1.txt',
      'sub/local.txt',
      'sub/other.txt',
      'é/ü.txt',
    ]);
    expect(out.filesSearched).toBeUndefined();
    // gitignore on (the default) keeps .git out even with hidden names included.
    const withGit = await callOk<Page>(rg, 'search_text', {
      pattern: needle,
      hidden: true,
      maxMatches: 2000,
    });
    expect(withGit.matches.some((m) => m.path.startsWith('.git/'))).toBe(false);
    expect(withGit.matches.some((m) => m.path === '.hidden/h.txt')).toBe(true);
  });

  it('falls back to the JavaScript search when ripgrep fails or is absent, with the same answer', async () => {
    const root = await tree();
    const failing = await withFakeRipgrep(root, 'exit 2');
    const missing = await connect([root], 'v2', ['--ripgrep', path.join(root, 'no-such-rg')]);
    const js = await connect([root], 'v2', ['--no-ripgrep']);
    clients.push(failing, missing, js);
    const query = { pattern: needle, maxMatches: 4 };
    const expected = await pages(js, query);
    expect(await pages(failing, query)).toEqual(expected);
    expect(await pages(missing, query)).toEqual(expected);
    const one = await callOk<Page>(failing, 'search_text', query);
    expect(one.filesSearched).toBe(2);
  });

  it('leaves a tree of fewer files than --ripgrep-min-files to the JavaScript search, and takes over past it', async () => {
    const root = await tree();
    const counted = await connect([root], 'v2', ['--ripgrep-min-files', '40']);
    const handed = await connect([root], 'v2', ['--ripgrep-min-files', '10']);
    clients.push(counted, handed);
    // The walk meets 16 files (15 text): under 40 JavaScript searches and counts them; past 10 ripgrep takes over.
    const small = await callOk<Page>(counted, 'search_text', { pattern: needle, maxMatches: 2000 });
    const large = await callOk<Page>(handed, 'search_text', { pattern: needle, maxMatches: 2000 });
    expect([small.filesSearched, large.filesSearched]).toEqual([15, undefined]);
    expect(large.matches).toEqual(small.matches);
  });

  it('when ripgrep runs out of the time budget, the walk takes over and the pages still add up', async () => {
    const root = await tree();
    const stalled = await withFakeRipgrep(root, 'exec sleep 30');
    const js = await connect([root], 'v2', ['--no-ripgrep']);
    clients.push(stalled, js);
    const first = await callOk<Page>(stalled, 'search_text', { pattern: needle, timeBudgetMs: 300 });
    // Out of budget in ripgrep: one file searched by the walk, and a cursor for the rest.
    expect([first.matches.length, first.filesSearched, first.stoppedBy]).toEqual([1, 1, 'timeBudget']);
    const matches = [...first.matches];
    let cursor = first.truncated?.nextCursor;
    let pagesLeft = 100; // At least a file a page: 30-odd files end well within this.
    while (cursor !== undefined && pagesLeft-- > 0) {
      const page = await callOk<Page>(stalled, 'search_text', { pattern: needle, timeBudgetMs: 300, cursor });
      matches.push(...page.matches);
      cursor = page.truncated?.nextCursor;
    }
    const all = await callOk<Page>(js, 'search_text', { pattern: needle, maxMatches: 2000 });
    expect(matches).toEqual(all.matches);
  });
});
