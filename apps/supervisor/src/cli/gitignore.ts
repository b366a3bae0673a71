import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** What Keel may keep inside a project: a state dir a config puts there (`stateDir: .keel`). */
export const keelIgnored = '.keel/';

/**
 * Adds `keelIgnored` to the `.gitignore` of `dir` (creating it) unless a line already says it, so
 * a state dir a config keeps in the project is never committed. True when it wrote.
 */
export function ignoreKeelFiles(dir: string): boolean {
  const file = path.join(dir, '.gitignore');
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const lines = text.split(/\r?\n/).map((line) => line.trim());
  if (lines.includes(keelIgnored) || lines.includes('.keel') || lines.includes('/.keel/')) return false;
  const separator = text === '' || text.endsWith('\n') ? '' : '\n';
  writeFileSync(
    file,
    `${text}${separator}# Keel's state, when a config keeps it in the project\n${keelIgnored}\n`,
  );
  return true;
}
