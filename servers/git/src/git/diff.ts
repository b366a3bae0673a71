/** One file of a diff: what happened to it and how many lines (null for binary files). */
export interface DiffFile {
  path: string;
  oldPath?: string;
  status: string;
  added: number | null;
  deleted: number | null;
  binary: boolean;
}

const statusNames: Record<string, string> = {
  A: 'added',
  C: 'copied',
  D: 'deleted',
  M: 'modified',
  R: 'renamed',
  T: 'typechange',
  U: 'unmerged',
  X: 'unknown',
};

/**
 * Parses `git diff --raw --numstat -z`: the raw records (status, paths) come first, then the numstat
 * records in the same order. Token counts are fixed by the record kind, so no path can be misread.
 */
export function parseRawNumstat(output: string): DiffFile[] {
  const tokens = output.split('\0');
  const files: DiffFile[] = [];
  let i = 0;
  while (i < tokens.length && tokens[i]!.startsWith(':')) {
    const meta = tokens[i++]!.split(' ');
    const status = meta[meta.length - 1] ?? 'X';
    const letter = status[0] ?? 'X';
    if (letter === 'R' || letter === 'C') {
      const oldPath = tokens[i++] ?? '';
      const newPath = tokens[i++] ?? '';
      files.push({ path: newPath, oldPath, status: statusNames[letter] ?? letter, added: null, deleted: null, binary: false });
    } else {
      files.push({ path: tokens[i++] ?? '', status: statusNames[letter] ?? letter, added: null, deleted: null, binary: false });
    }
  }
  for (const file of files) {
    const token = tokens[i++];
    if (token === undefined) break;
    const [added, deleted, rest] = token.split('\t');
    // A rename's numstat record carries its two paths as the next tokens.
    if (rest === '') i += 2;
    if (added === '-' && deleted === '-') {
      file.binary = true;
    } else {
      file.added = Number(added);
      file.deleted = Number(deleted);
    }
  }
  return files;
}
