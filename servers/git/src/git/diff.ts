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
  const files = parseDiffOutput(output).files;
  // git lists an unmerged path twice (the conflict, and the work tree against our side): keep the conflict.
  const unmerged = new Set(files.filter((file) => file.status === 'unmerged').map((file) => file.path));
  return files
    .filter((file) => !unmerged.has(file.path) || file.status === 'unmerged')
    .map((file) => (file.status === 'unmerged' ? { ...file, added: null, deleted: null } : file));
}

/**
 * Parses `git diff --raw --numstat -z --patch`: the summary records, a NUL, then the patch text.
 * Returns the files and where the patch starts, so one git run yields both.
 */
export function parseDiffOutput(output: string): { files: DiffFile[]; patch: string } {
  const tokens = output.split('\0');
  const files: DiffFile[] = [];
  let i = 0;
  while (i < tokens.length && tokens[i]!.startsWith(':')) {
    // A combined record (`::`, an unmerged path) has one status letter per parent.
    const combined = tokens[i]!.startsWith('::');
    const meta = tokens[i++]!.split(' ');
    const status = meta[meta.length - 1] ?? 'X';
    const letter = combined ? 'U' : (status[0] ?? 'X');
    if (letter === 'R' || letter === 'C') {
      const oldPath = tokens[i++] ?? '';
      const newPath = tokens[i++] ?? '';
      files.push({
        path: newPath,
        oldPath,
        status: statusNames[letter] ?? letter,
        added: null,
        deleted: null,
        binary: false,
      });
    } else {
      files.push({
        path: tokens[i++] ?? '',
        status: statusNames[letter] ?? letter,
        added: null,
        deleted: null,
        binary: false,
      });
    }
  }
  for (const file of files) {
    const token = tokens[i];
    if (token === undefined || token === '' || !token.includes('\t')) break;
    i++;
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
  if (files.length === 0) return { files, patch: output };
  // Skip the NUL that ends the summary; everything after is the patch (a patch never holds a NUL).
  let consumed = 0;
  for (let t = 0; t < i; t++) consumed += tokens[t]!.length + 1;
  return { files, patch: output.slice(consumed + 1) };
}

/**
 * Parses `git diff --raw -z --patch` and counts each file's added and deleted lines from its patch
 * section, so git computes every file's diff once instead of twice (numstat and patch). Returns
 * undefined when the sections do not line up with the summary (unmerged paths), and the caller asks
 * git for numstat instead. Works on the bytes git wrote: the patch is paged by byte offsets, so a
 * multi-megabyte patch is never decoded as a whole, only the page that is returned.
 */
export function parseRawWithPatch(output: Buffer): { files: DiffFile[]; patch: Buffer } | undefined {
  const files: DiffFile[] = [];
  let at = 0;
  const take = () => {
    let end = output.indexOf(0, at);
    if (end === -1) end = output.length;
    const token = output.toString('utf8', at, end);
    at = end + 1;
    return token;
  };
  while (at < output.length && output[at] === colon) {
    if (output[at + 1] === colon) return undefined;
    const meta = take().split(' ');
    const status = meta[meta.length - 1] ?? 'X';
    const letter = status[0] ?? 'X';
    if (letter === 'U') return undefined;
    if (letter === 'R' || letter === 'C') {
      const oldPath = take();
      files.push({
        path: take(),
        oldPath,
        status: statusNames[letter] ?? letter,
        added: 0,
        deleted: 0,
        binary: false,
      });
    } else {
      files.push({
        path: take(),
        status: statusNames[letter] ?? letter,
        added: 0,
        deleted: 0,
        binary: false,
      });
    }
  }
  if (files.length === 0) return { files, patch: output };
  // Skip the NUL that ends the summary; everything after is the patch (a patch never holds a NUL).
  const patch = output.subarray(at + 1);
  let section = -1;
  let inHunk = false;
  let file: DiffFile | undefined;
  let start = 0;
  while (start < patch.length) {
    let end = patch.indexOf(0x0a, start);
    if (end === -1) end = patch.length;
    const first = patch[start];
    if (first === 0x64 /* d */ && startsWith(patch, diffHeader, start)) {
      section++;
      file = files[section];
      if (file === undefined) return undefined;
      inHunk = false;
    } else if (file !== undefined) {
      if (inHunk) {
        if (first === 0x2b /* + */) file.added = (file.added ?? 0) + 1;
        else if (first === 0x2d /* - */) file.deleted = (file.deleted ?? 0) + 1;
      } else if (first === 0x40 /* @ */ && startsWith(patch, hunkHeader, start)) {
        inHunk = true;
      } else if (startsWith(patch, binaryFiles, start) || startsWith(patch, binaryPatch, start)) {
        file.binary = true;
        file.added = null;
        file.deleted = null;
      }
    }
    start = end + 1;
  }
  return section + 1 === files.length ? { files, patch } : undefined;
}

const colon = 0x3a;
const diffHeader = Buffer.from('diff --git ');
const hunkHeader = Buffer.from('@@');
const binaryFiles = Buffer.from('Binary files ');
const binaryPatch = Buffer.from('GIT binary patch');

function startsWith(buffer: Buffer, prefix: Buffer, at: number): boolean {
  return (
    buffer.length - at >= prefix.length &&
    buffer.compare(prefix, 0, prefix.length, at, at + prefix.length) === 0
  );
}
