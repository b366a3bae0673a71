import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const skipped = new Set(['.git', 'node_modules', '.keel']);
const fileCap = 20_000;

/**
 * The workspace tree's content fingerprint, for no-progress detection. Files are hashed by
 * content, cached by (size, mtime), so rewriting a file with the same bytes is not progress.
 * Past `fileCap` files the walk stops and the fingerprint covers what it saw.
 */
export class WorkspaceFingerprint {
  readonly #root: string;
  readonly #cache = new Map<string, { size: number; mtimeMs: number; hash: string }>();

  constructor(root: string) {
    this.#root = root;
  }

  compute(): string {
    const digest = createHash('sha256');
    let files = 0;
    const visit = (rel: string) => {
      let entries;
      try {
        entries = readdirSync(path.join(this.#root, rel), { withFileTypes: true });
      } catch {
        return;
      }
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const entry of entries) {
        if (files >= fileCap) return;
        if (skipped.has(entry.name)) continue;
        const child = rel === '' ? entry.name : `${rel}/${entry.name}`;
        if (entry.isDirectory()) visit(child);
        else if (entry.isFile()) {
          files++;
          digest.update(`${child}\0${this.#hashFile(child)}\n`);
        } else if (entry.isSymbolicLink()) digest.update(`${child}\0link\n`);
      }
    };
    visit('');
    return digest.digest('hex');
  }

  #hashFile(rel: string): string {
    const abs = path.join(this.#root, rel);
    try {
      const stat = statSync(abs);
      const cached = this.#cache.get(rel);
      if (cached !== undefined && cached.size === stat.size && cached.mtimeMs === stat.mtimeMs)
        return cached.hash;
      const hash = createHash('sha256').update(readFileSync(abs)).digest('hex');
      this.#cache.set(rel, { size: stat.size, mtimeMs: stat.mtimeMs, hash });
      return hash;
    } catch {
      return 'unreadable';
    }
  }
}
