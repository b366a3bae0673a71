import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { callErr, callOk, connect, kinds } from './helpers.js';

/** A small project: sources, a gitignored build dir, a nested .gitignore with a re-include, a .git dir. */
async function project(): Promise<string> {
  const root = await tempDir();
  const files: Record<string, string> = {
    '.gitignore': 'dist/\n*.log\n',
    'README.md': '# demo\nTODO: write docs\n',
    'src/index.ts': 'export const a = 1;\n// TODO: remove\nexport const b = 2;\n',
    'src/util/math.ts': 'export function add(x: number, y: number) {\n  return x + y; // TODO tests\n}\n',
    'src/util/.gitignore': '!keep.log\n',
    'src/util/keep.log': 'TODO kept\n',
    'src/util/drop.txt.log': 'TODO dropped\n',
    'dist/index.js': 'TODO built\n',
    'debug.log': 'TODO log\n',
    '.git/config': '[core]\n',
    '.env': 'TODO=secret\n',
  };
  for (const [name, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, name)), { recursive: true });
    await writeFile(path.join(root, name), content);
  }
  await writeFile(path.join(root, 'src', 'blob.bin'), Buffer.from([0x54, 0x4f, 0x44, 0x4f, 0, 1, 2]));
  return root;
}

describe.each(kinds)('exploring (%s client)', (kind) => {
  it('tree honours .gitignore, skips .git and hidden files, and shows depth cuts', async () => {
    const root = await project();
    const client = await connect([root], kind);
    const out = await callOk(client, 'tree', { maxDepth: 2 });
    expect(out).toEqual({
      path: '.',
      entries: [
        { path: 'README.md', type: 'file' },
        { path: 'src', type: 'directory' },
        { path: 'src/blob.bin', type: 'file' },
        { path: 'src/index.ts', type: 'file' },
        { path: 'src/util', type: 'directory' },
      ],
      omitted: [{ path: 'src/util', reason: 'depth', entries: 4 }],
    });
    const all = await callOk<{ entries: Array<{ path: string }> }>(client, 'tree', {
      gitignore: false,
      hidden: true,
      maxDepth: 5,
    });
    expect(all.entries.map((e) => e.path)).toContain('.git/config');
  });

  it('tree cut by maxEntries says where, and its cursor walk covers every entry once', async () => {
    const root = await tempDir();
    for (const dir of ['a', 'b', 'c']) {
      for (let i = 0; i < 5; i++) {
        await mkdir(path.join(root, dir, `d${i}`), { recursive: true });
        await writeFile(path.join(root, dir, `d${i}`, 'f.txt'), '');
      }
    }
    const client = await connect([root], kind);
    const full = await callOk<{ entries: Array<{ path: string }> }>(client, 'tree', {
      maxDepth: 5,
      maxEntries: 5000,
    });
    expect(full.entries).toHaveLength(3 + 15 + 15);
    const first = await callOk<{ omitted: unknown[]; truncated: { nextCursor: string } }>(client, 'tree', {
      maxDepth: 5,
      maxEntries: 5,
    });
    // Breadth-first: a, b, c, a/d0, a/d1 shown; a is partly listed, the others not yet.
    expect(first.omitted).toEqual([
      { path: 'a', reason: 'budget' },
      { path: 'b', reason: 'budget' },
      { path: 'c', reason: 'budget' },
      { path: 'a/d0', reason: 'budget' },
      { path: 'a/d1', reason: 'budget' },
    ]);
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await callOk<{ entries: Array<{ path: string }>; truncated?: { nextCursor?: string } }>(
        client,
        'tree',
        {
          maxDepth: 5,
          maxEntries: 7,
          ...(cursor === undefined ? {} : { cursor }),
        },
      );
      seen.push(...page.entries.map((e) => e.path));
      cursor = page.truncated?.nextCursor;
    } while (cursor !== undefined);
    expect(seen.sort()).toEqual(full.entries.map((e) => e.path).sort());
  });

  it('find_files matches names and paths, .gitignore aware, with a cursor that walks to the end', async () => {
    const root = await project();
    const client = await connect([root], kind);
    expect(await callOk(client, 'find_files', { pattern: '*.ts' })).toEqual({
      path: '.',
      matches: [
        { path: 'src/index.ts', type: 'file' },
        { path: 'src/util/math.ts', type: 'file' },
      ],
      total: 2,
    });
    expect(await callOk(client, 'find_files', { pattern: '*.log' })).toEqual({
      path: '.',
      matches: [{ path: 'src/util/keep.log', type: 'file' }],
      total: 1,
    });
    expect(await callOk(client, 'find_files', { pattern: 'src/*', type: 'directory' })).toEqual({
      path: '.',
      matches: [{ path: 'src/util', type: 'directory' }],
      total: 1,
    });
    const unbounded = await callOk<{ matches: unknown[] }>(client, 'find_files', {
      pattern: '**',
      gitignore: false,
      hidden: true,
    });
    const walked: unknown[] = [];
    let cursor: string | undefined;
    do {
      const page = await callOk<{ matches: unknown[]; truncated?: { nextCursor?: string } }>(
        client,
        'find_files',
        {
          pattern: '**',
          gitignore: false,
          hidden: true,
          limit: 3,
          ...(cursor === undefined ? {} : { cursor }),
        },
      );
      walked.push(...page.matches);
      cursor = page.truncated?.nextCursor;
    } while (cursor !== undefined);
    expect(walked).toEqual(unbounded.matches);
    expect(walked.length).toBe(16);
  });

  it('search_text finds regex and literal matches with context, skipping binary and ignored files', async () => {
    const root = await project();
    const client = await connect([root], kind);
    const out = await callOk(client, 'search_text', { pattern: 'TODO' });
    expect(out).toEqual({
      path: '.',
      matches: [
        { path: 'README.md', line: 2, column: 1, text: 'TODO: write docs' },
        { path: 'src/index.ts', line: 2, column: 4, text: '// TODO: remove' },
        { path: 'src/util/keep.log', line: 1, column: 1, text: 'TODO kept' },
        { path: 'src/util/math.ts', line: 2, column: 20, text: '  return x + y; // TODO tests' },
      ],
      filesSearched: 4,
      filesWithMatches: 4,
      skipped: { binary: 1, tooLarge: 0, unreadable: 0 },
    });
    const ctxOut = await callOk<{ matches: unknown[] }>(client, 'search_text', {
      pattern: 'x + y',
      literal: true,
      contextLines: 1,
      include: ['*.ts'],
    });
    expect(ctxOut.matches).toEqual([
      {
        path: 'src/util/math.ts',
        line: 2,
        column: 10,
        text: '  return x + y; // TODO tests',
        before: ['export function add(x: number, y: number) {'],
        after: ['}'],
      },
    ]);
    const insensitive = await callOk<{ matches: Array<{ path: string }> }>(client, 'search_text', {
      pattern: 'todo',
      caseSensitive: false,
      exclude: ['src'],
    });
    expect(insensitive.matches.map((m) => m.path)).toEqual(['README.md']);
    expect(await callErr(client, 'search_text', { pattern: '(' })).toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    expect(await callErr(client, 'search_text', { pattern: '(x)\\1' })).toEqual({
      code: 'INVALID_ARGUMENT',
      message:
        'pattern uses a backreference, a lookaround or a large repeat count, which can take exponential time',
      hint: 'Rewrite it without \\1, \\k<name>, (?=…), (?!…), (?<=…), (?<!…) and with repeat counts of at most 15 (a+ rather than a{1,100}) — e.g. search the plain part and use contextLines — or search a literal.',
      retryable: false,
    });
  });

  it('search_text cannot be made to run away: exponential patterns finish on the input that explodes them', async () => {
    const root = await tempDir();
    // 5,000 a's then a mismatch: a backtracking engine needs ~2^5000 steps for each pattern below.
    await writeFile(path.join(root, 'bomb.txt'), `${'a'.repeat(5000)}!\nmatch aaaa\n`);
    const client = await connect([root], kind);
    for (const [pattern, lines] of [
      ['^(a|aa)+$', []],
      ['^(a+)+$', []],
      ['^(\\w+\\s?)+$', [2]],
    ] as const)
      for (const caseSensitive of [true, false]) {
        const out = await callOk<{ matches: Array<{ line: number }> }>(client, 'search_text', {
          pattern,
          caseSensitive,
        });
        expect(out.matches.map((m) => m.line)).toEqual(lines);
      }
    const folded = await callOk<{ matches: Array<{ line: number; column: number }> }>(client, 'search_text', {
      pattern: 'MATCH A+$',
      caseSensitive: false,
    });
    expect(folded.matches.map((m) => [m.line, m.column])).toEqual([[2, 1]]);
  });

  it('search_text stops when full and its cursor walk equals the unbounded answer', async () => {
    const root = await tempDir();
    for (let f = 0; f < 6; f++) {
      await writeFile(
        path.join(root, `f${f}.txt`),
        Array.from({ length: 7 }, (_, i) => (i % 2 === 0 ? `hit ${f}.${i}` : 'miss')).join('\n'),
      );
    }
    await writeFile(path.join(root, 'huge.txt'), `hit\n${'x'.repeat(3000)}`);
    const client = await connect([root], kind);
    const all = await callOk<{ matches: unknown[]; skipped: unknown }>(client, 'search_text', {
      pattern: '^hit',
      maxFileBytes: 1000,
      maxMatches: 2000,
    });
    expect(all.matches).toHaveLength(24);
    expect(all.skipped).toEqual({ binary: 0, tooLarge: 1, unreadable: 0 });
    const walked: unknown[] = [];
    const stops: Array<string | undefined> = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await callOk<{
        matches: unknown[];
        stoppedBy?: string;
        truncated?: { nextCursor?: string };
      }>(client, 'search_text', {
        pattern: '^hit',
        maxFileBytes: 1000,
        maxMatches: 5,
        ...(cursor === undefined ? {} : { cursor }),
      });
      expect(page.matches.length).toBeLessThanOrEqual(5);
      walked.push(...page.matches);
      cursor = page.truncated?.nextCursor;
      if (cursor !== undefined) stops.push(page.stoppedBy);
      pages++;
    } while (cursor !== undefined);
    expect(walked).toEqual(all.matches);
    // Every page that handed out a cursor stopped because it was full.
    expect(new Set(stops)).toEqual(new Set(['maxMatches']));
    expect(pages).toBe(5);
    const perFile = await callOk<{ matches: unknown[] }>(client, 'search_text', {
      pattern: '^hit',
      maxFileBytes: 1000,
      maxMatchesPerFile: 1,
    });
    expect(perFile.matches).toHaveLength(6);
  });

  it('search_text out of time returns what it found with a cursor, and the walk still ends complete', async () => {
    const root = await tempDir();
    for (let d = 0; d < 8; d++) {
      await mkdir(path.join(root, `d${d}`));
      await Promise.all(
        Array.from({ length: 50 }, (_, f) =>
          writeFile(path.join(root, `d${d}`, `f${f}.txt`), f % 10 === 0 ? `hit ${d}/${f}\n` : 'nothing\n'),
        ),
      );
    }
    const client = await connect([root], kind);
    const all = await callOk<{ matches: unknown[] }>(client, 'search_text', {
      pattern: 'hit',
      maxMatches: 2000,
    });
    expect(all.matches).toHaveLength(40);
    const walked: unknown[] = [];
    const stops = new Set<string>();
    let cursor: string | undefined;
    do {
      const page = await callOk<{
        matches: unknown[];
        stoppedBy?: string;
        truncated?: { nextCursor?: string };
      }>(client, 'search_text', {
        pattern: 'hit',
        maxMatches: 2000,
        timeBudgetMs: 1,
        ...(cursor === undefined ? {} : { cursor }),
      });
      walked.push(...page.matches);
      if (page.stoppedBy !== undefined) stops.add(page.stoppedBy);
      cursor = page.truncated?.nextCursor;
    } while (cursor !== undefined);
    expect(stops).toEqual(new Set(['timeBudget']));
    expect(walked).toEqual(all.matches);
  });
});
