import type { PathJail } from '@keel/kit';
import { readSmallFileSync } from './files.js';
import { comparePaths } from './walk.js';

export const lineTextCap = 400;

export interface TextMatch {
  path: string;
  line: number;
  column: number;
  text: string;
  before?: string[];
  after?: string[];
}

/**
 * Where a page of search_text resumes: in file `p` (relative to the searched directory, in walk
 * order) after its first `k` matches, or after the whole file when `k` is -1. By path rather than
 * by position, so that the walk and ripgrep's file list, which count different files, resume alike.
 */
export interface SearchCursor {
  p: string;
  k: number;
  /** Set once ripgrep ran out of the time budget: the rest of the search is the walk's. */
  w?: 1;
}

export interface SearchedFile {
  /** Relative to the searched directory, with forward slashes. */
  rel: string;
  real: string;
}

export interface PageOptions {
  resume: SearchCursor | undefined;
  jail: PathJail;
  signal: AbortSignal;
  started: number;
  timeBudgetMs: number;
  maxFileBytes: number;
  maxMatches: number;
  maxMatchesPerFile: number;
  contextLines: number;
  /** Global, not multiline: run on one line at a time. */
  regex: RegExp;
  /** Whether a file holds a match anywhere (multiline flag), before it is split into lines. */
  quick: RegExp;
  /** A case-sensitive literal's bytes, to reject a file without decoding it. */
  needle: Buffer | undefined;
}

export interface Page {
  matches: TextMatch[];
  filesSearched: number;
  filesWithMatches: number;
  skipped: { binary: number; tooLarge: number; unreadable: number };
  stoppedBy?: 'maxMatches' | 'timeBudget';
  next?: SearchCursor;
}

/** Whether a directory (relative path) and everything under it come before file `p` in walk order. */
export function before(dir: string, p: string): boolean {
  return !p.startsWith(`${dir}/`) && comparePaths(dir, p) < 0;
}

function clip(line: string, column: number): string {
  if (line.length <= lineTextCap) return line;
  const start = Math.max(0, Math.min(column - lineTextCap / 4, line.length - lineTextCap));
  return `${start > 0 ? '…' : ''}${line.slice(start, start + lineTextCap)}${start + lineTextCap < line.length ? '…' : ''}`;
}

/**
 * One page of search_text over files in walk order: each read through the jail (no symlink, the
 * descriptor re-checked), binary and oversized ones skipped, matched line by line, stopping when
 * the page is full or the time budget is spent — at least one file per call, so a cursor always
 * moves forward. The same for every lister of the files, so their pages are the same.
 */
export async function searchPage(
  files: AsyncIterable<SearchedFile> | Iterable<SearchedFile>,
  options: PageOptions,
): Promise<Page> {
  const { resume, regex } = options;
  const page: Page = {
    matches: [],
    filesSearched: 0,
    filesWithMatches: 0,
    skipped: { binary: 0, tooLarge: 0, unreadable: 0 },
  };
  let visited = 0;
  let sliceStarted = Date.now();
  for await (const file of files) {
    let skip = 0;
    if (resume !== undefined) {
      const order = comparePaths(file.rel, resume.p);
      if (order < 0 || (order === 0 && resume.k < 0)) continue; // Searched on an earlier page.
      if (order === 0) skip = resume.k;
    }
    if (Date.now() - sliceStarted > 20) {
      // Reads are synchronous; let cancellation, timeouts and other calls in between slices.
      await new Promise((resolve) => setImmediate(resolve));
      sliceStarted = Date.now();
    }
    if (visited++ > 0 && (Date.now() - options.started > options.timeBudgetMs || options.signal.aborted)) {
      page.stoppedBy = 'timeBudget';
      page.next = { p: file.rel, k: 0 };
      break;
    }
    const loaded = readSmallFileSync(options.jail, file.real, options.maxFileBytes);
    if (loaded.kind !== 'text') {
      page.skipped[loaded.kind]++;
      continue;
    }
    page.filesSearched++;
    if (options.needle !== undefined && loaded.data.indexOf(options.needle) === -1) continue;
    const text = loaded.data.toString('utf8');
    if (!options.quick.test(text)) continue;
    const lines = text.split('\n');
    let found = 0;
    let cutHere = false;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.endsWith('\r') ? lines[i]!.slice(0, -1) : lines[i]!;
      regex.lastIndex = 0;
      const hit = regex.exec(line);
      if (hit === null) continue;
      found++;
      if (found <= skip) continue;
      if (found > options.maxMatchesPerFile) break;
      if (page.matches.length === options.maxMatches) {
        cutHere = true;
        break;
      }
      const context = options.contextLines;
      page.matches.push({
        path: file.rel,
        line: i + 1,
        column: hit.index + 1,
        text: clip(line, hit.index),
        ...(context === 0
          ? {}
          : {
              before: lines.slice(Math.max(0, i - context), i).map((l) => clip(l.replace(/\r$/, ''), 0)),
              after: lines.slice(i + 1, i + 1 + context).map((l) => clip(l.replace(/\r$/, ''), 0)),
            }),
      });
    }
    if (found > skip) page.filesWithMatches++;
    if (cutHere) {
      page.stoppedBy = 'maxMatches';
      page.next = { p: file.rel, k: found - 1 };
      break;
    }
    if (page.matches.length === options.maxMatches) {
      // Full exactly at a file's end: there may be nothing more, but only the next page can tell.
      page.stoppedBy = 'maxMatches';
      page.next = { p: file.rel, k: -1 };
      break;
    }
  }
  return page;
}
