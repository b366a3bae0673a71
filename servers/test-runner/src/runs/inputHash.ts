import { createHash } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import type { PathJail } from '@keel/kit';

const skipDirs = new Set([
  'node_modules',
  '.git',
  'target',
  '__pycache__',
  '.pytest_cache',
  '.venv',
  'venv',
  '.tox',
  '.turbo',
  'coverage',
]);
const maxFiles = 50_000;
// Bigger files (data sets, binaries) are identified by size and mtime rather than read in full.
const maxHashedBytes = 16 * 1024 * 1024;

export type GitRunner = (
  args: readonly string[],
  cwd: string,
) => Promise<{ exitCode: number | null; stdout: string }>;

/**
 * A hash of the files a run depends on, uncommitted edits included: in a git work tree, every
 * tracked and untracked-but-not-ignored file of the repository (a package imports its siblings);
 * elsewhere, the files under the project directory minus dependency and build directories.
 * `undefined` when the tree is too big to hash, and the run is then simply not cached.
 */
export async function hashInputs(
  projectDir: string,
  jail: PathJail,
  git: GitRunner,
  /** Real directories whose files never count (the server's own state dir, when it lies in a root). */
  exclude: readonly string[] = [],
): Promise<{ hash: string; files: number } | undefined> {
  let base = projectDir;
  let files: string[] | undefined;
  const top = await git(['rev-parse', '--show-toplevel'], projectDir).catch(() => undefined);
  const topDir = top?.exitCode === 0 ? top.stdout.trim() : '';
  if (topDir !== '' && jail.contains(topDir)) {
    const listed = await git(['ls-files', '-z', '--cached', '--others', '--exclude-standard'], topDir);
    if (listed.exitCode === 0) {
      base = topDir;
      files = [...new Set(listed.stdout.split('\0').filter(Boolean))];
    }
  }
  files ??= await walk(projectDir);
  if (exclude.length > 0) {
    const inside = (file: string) => {
      const full = path.join(base, file);
      return exclude.some((dir) => full === dir || full.startsWith(`${dir}${path.sep}`));
    };
    files = files.filter((file) => !inside(file));
  }
  if (files.length > maxFiles) return undefined;
  files.sort();
  const digests: string[] = Array.from({ length: files.length }, () => '');
  let next = 0;
  const worker = async () => {
    while (next < files.length) {
      const index = next++;
      digests[index] = await digestOf(path.join(base, files[index]!));
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  const hash = createHash('sha256');
  files.forEach((file, i) => hash.update(`${file}\0${digests[i]}\n`));
  return { hash: hash.digest('hex'), files: files.length };
}

async function digestOf(file: string): Promise<string> {
  try {
    const info = await lstat(file);
    if (info.isSymbolicLink()) return `link:${await readlink(file)}`;
    if (!info.isFile()) return 'other';
    if (info.size > maxHashedBytes) return `large:${info.size}:${info.mtimeMs}`;
    return createHash('sha256')
      .update(await readFile(file))
      .digest('hex');
  } catch {
    // A tracked file deleted in the work tree is part of the state too.
    return 'missing';
  }
}

async function walk(root: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (dir: string) => {
    if (out.length > maxFiles) return;
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!skipDirs.has(entry.name)) await visit(full);
      } else out.push(path.relative(root, full));
    }
  };
  await visit(root);
  return out;
}
