import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { closeSync, constants, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPathJail, type PathJail } from '../src/jail.js';

// One layout for the whole table:
//   base/root/            the jail root
//   base/root/inside.txt
//   base/root/sub/
//   base/root/link-out -> base/outside          (symlink out)
//   base/root/sub-link -> base/outside          (parent-directory symlink)
//   base/root/dangling -> base/outside/new.txt  (dangling symlink out)
//   base/root/dangling-in -> base/root/new.txt  (dangling symlink in)
//   base/root/link-in -> base/root/sub          (symlink that stays inside)
//   base/root-evil/secret.txt                   (sibling sharing the prefix)
//   base/outside/secret.txt
let base: string;
let root: string;
let jail: PathJail;

beforeAll(async () => {
  base = await realpath(await mkdtemp(path.join(tmpdir(), 'keel-jail-')));
  root = path.join(base, 'root');
  await mkdir(path.join(root, 'sub'), { recursive: true });
  await mkdir(path.join(base, 'root-evil'));
  await mkdir(path.join(base, 'outside'));
  await writeFile(path.join(root, 'inside.txt'), 'in');
  await writeFile(path.join(base, 'root-evil', 'secret.txt'), 'evil');
  await writeFile(path.join(base, 'outside', 'secret.txt'), 'secret');
  await symlink(path.join(base, 'outside'), path.join(root, 'link-out'));
  await symlink(path.join(base, 'outside'), path.join(root, 'sub-link'));
  await symlink(path.join(base, 'outside', 'new.txt'), path.join(root, 'dangling'));
  await symlink(path.join(root, 'new.txt'), path.join(root, 'dangling-in'));
  await symlink(path.join(root, 'sub'), path.join(root, 'link-in'));
  jail = await createPathJail([root]);
});

afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

describe('escape attempts', () => {
  const attempts: Array<[string, () => string]> = [
    ['dot-dot', () => '../outside/secret.txt'],
    ['dot-dot inside a path', () => 'sub/../../outside/secret.txt'],
    ['absolute outside', () => path.join(base, 'outside', 'secret.txt')],
    ['sibling sharing the prefix', () => path.join(base, 'root-evil', 'secret.txt')],
    ['sibling prefix, relative', () => '../root-evil/secret.txt'],
    ['symlink out', () => 'link-out/secret.txt'],
    ['symlink out, itself', () => 'link-out'],
    ['parent-directory symlink, new file', () => 'sub-link/new-file.txt'],
    ['dangling symlink out', () => 'dangling'],
    ['NUL byte', () => 'inside.txt\0../../etc/passwd'],
    ['Windows drive path', () => 'C:\\Windows\\system32'],
    ['Windows UNC path', () => '\\\\server\\share\\x'],
    ['backslash traversal', () => '..\\outside\\secret.txt'],
    ['root of the filesystem', () => '/'],
    ['file URI outside', () => `file://${path.join(base, 'outside', 'secret.txt')}`],
  ];
  it.each(attempts)('%s is OUTSIDE_ROOTS', async (_name, input) => {
    const result = await jail.resolve(input());
    expect(result.ok ? 'resolved' : result.error.code).toBe('OUTSIDE_ROOTS');
  });
});

describe('legitimate paths', () => {
  it.each([
    ['relative file', 'inside.txt', 'inside.txt', true],
    ['absolute file', '<root>/inside.txt', 'inside.txt', true],
    ['the root itself', '.', '', true],
    ['dot-dot that stays inside', 'sub/../inside.txt', 'inside.txt', true],
    ['symlink that stays inside', 'link-in', 'sub', true],
    ['new file under an existing dir', 'sub/new.txt', 'sub/new.txt', false],
    ['new file under new dirs', 'a/b/c.txt', 'a/b/c.txt', false],
    ['dangling symlink that points inside', 'dangling-in', 'new.txt', false],
    ['a path under a regular file', 'inside.txt/child', 'inside.txt/child', false],
  ])('%s resolves inside', async (_name, input, expected, exists) => {
    const result = await jail.resolve(input.replace('<root>', root));
    expect(result).toEqual({ ok: true, value: { real: path.join(root, expected), exists, root } });
  });
});

describe('client roots', () => {
  it('narrow to a subdirectory', async () => {
    const narrowed = await jail.narrow([`file://${path.join(root, 'sub')}`]);
    expect(narrowed.roots).toEqual([path.join(root, 'sub')]);
    const inside = await narrowed.resolve(path.join(root, 'sub', 'x.txt'));
    expect(inside.ok).toBe(true);
    const outside = await narrowed.resolve(path.join(root, 'inside.txt'));
    expect(outside.ok ? 'ok' : outside.error.code).toBe('OUTSIDE_ROOTS');
  });

  it('cannot widen: a client root above the server root yields the server root', async () => {
    const narrowed = await jail.narrow([`file://${base}`]);
    expect(narrowed.roots).toEqual([root]);
    const escape = await narrowed.resolve(path.join(base, 'outside', 'secret.txt'));
    expect(escape.ok ? 'ok' : escape.error.code).toBe('OUTSIDE_ROOTS');
  });

  it('cannot add: a disjoint client root grants nothing', async () => {
    const narrowed = await jail.narrow([`file://${path.join(base, 'outside')}`, '/etc']);
    expect(narrowed.roots).toEqual([]);
    const attempt = await narrowed.resolve('inside.txt');
    expect(attempt.ok ? 'ok' : attempt.error.code).toBe('OUTSIDE_ROOTS');
  });

  it('a symlinked client root is judged by its target', async () => {
    const narrowed = await jail.narrow([path.join(root, 'link-out')]);
    expect(narrowed.roots).toEqual([]);
  });
});

describe('open re-checks the descriptor', () => {
  it('refuses a file swapped for a symlink out after resolve', async () => {
    const target = path.join(root, 'swap.txt');
    await writeFile(target, 'inside');
    const resolved = await jail.resolve('swap.txt');
    if (!resolved.ok) throw new Error('resolve failed');
    await rm(target);
    await symlink(path.join(base, 'outside', 'secret.txt'), target);
    const opened = await jail.open(resolved.value, constants.O_RDONLY);
    expect(opened.ok ? 'ok' : opened.error.code).toBe('OUTSIDE_ROOTS');
    await rm(target);
  });

  it('refuses a parent directory swapped for a symlink out after resolve', async () => {
    await mkdir(path.join(root, 'swapdir'));
    await writeFile(path.join(root, 'swapdir', 'secret.txt'), 'inside');
    const resolved = await jail.resolve('swapdir/secret.txt');
    if (!resolved.ok) throw new Error('resolve failed');
    await rm(path.join(root, 'swapdir'), { recursive: true });
    await symlink(path.join(base, 'outside'), path.join(root, 'swapdir'));
    const opened = await jail.open(resolved.value, constants.O_RDONLY);
    expect(opened.ok ? 'ok' : opened.error.code).toBe('OUTSIDE_ROOTS');
    await rm(path.join(root, 'swapdir'));
  });

  it('openSync refuses a file swapped for a symlink out after resolve, and opens one that stayed', async () => {
    const target = path.join(root, 'swap-sync.txt');
    await writeFile(target, 'inside');
    const resolved = await jail.resolve('swap-sync.txt');
    if (!resolved.ok) throw new Error('resolve failed');
    const stayed = jail.openSync(resolved.value.real, constants.O_RDONLY);
    expect(stayed.ok ? readFileSync(stayed.value, 'utf8') : stayed.error.code).toBe('inside');
    if (stayed.ok) closeSync(stayed.value);
    await rm(target);
    await symlink(path.join(base, 'outside', 'secret.txt'), target);
    const swapped = jail.openSync(resolved.value.real, constants.O_RDONLY);
    expect(swapped.ok ? 'opened' : swapped.error.code).toBe('OUTSIDE_ROOTS');
    await rm(target);
  });

  it('opens a file that stayed put', async () => {
    const resolved = await jail.resolve('inside.txt');
    if (!resolved.ok) throw new Error('resolve failed');
    const opened = await jail.open(resolved.value, constants.O_RDONLY);
    if (!opened.ok) throw new Error(opened.error.message);
    expect(await opened.value.readFile('utf8')).toBe('in');
    await opened.value.close();
  });
});

it('a missing root is NOT_FOUND with a hint', async () => {
  await expect(createPathJail([path.join(base, 'nope')])).rejects.toMatchObject({
    code: 'NOT_FOUND',
    hint: 'Pass an existing directory to --root.',
  });
});
