import { countLines, type PathJail, type ResolvedPath } from '@keel/kit';
import { diff } from '../util/lazy.js';
import { isUtf8Text, openForRead } from './files.js';

export interface LineDelta {
  linesAdded: number;
  linesRemoved: number;
  binary: boolean;
}

/**
 * Past this many changed lines the exact diff is not worth its cost (Myers is quadratic in the edit
 * length): the counts become the bound, every new line added and every old line removed.
 */
const maxEditLength = 20_000;

/**
 * The lines a change from `before` (undefined: the file is new) to `after` adds and removes, as a
 * line diff counts them. Binary content has no lines: both counts are 0 and `binary` says why. Where
 * the diff would be too costly the counts are their upper bound, never less than the truth.
 */
export async function lineDelta(before: Buffer | undefined, after: Buffer): Promise<LineDelta> {
  if ((before !== undefined && !isUtf8Text(before)) || !isUtf8Text(after))
    return { linesAdded: 0, linesRemoved: 0, binary: true };
  const oldText = before?.toString('utf8') ?? '';
  const newText = after.toString('utf8');
  if (oldText === newText) return { linesAdded: 0, linesRemoved: 0, binary: false };
  const { diffLines } = await diff();
  const parts = diffLines(oldText, newText, { maxEditLength });
  if (parts === undefined)
    return {
      linesAdded: countLines(after),
      linesRemoved: countLines(before ?? Buffer.alloc(0)),
      binary: false,
    };
  let linesAdded = 0;
  let linesRemoved = 0;
  for (const part of parts) {
    if (part.added) linesAdded += part.count;
    else if (part.removed) linesRemoved += part.count;
  }
  return { linesAdded, linesRemoved, binary: false };
}

/** The lines of a file, streamed (for files too large to load); 0 when it cannot be read. */
export async function fileLines(jail: PathJail, resolved: ResolvedPath): Promise<number> {
  const opened = await openForRead(jail, resolved, resolved.real);
  if (!opened.ok) return 0;
  const buffer = Buffer.allocUnsafe(1024 * 1024);
  let lines = 0;
  let last = -1;
  try {
    for (let position = 0; ;) {
      const { bytesRead } = await opened.value.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) break;
      for (let at = buffer.indexOf(0x0a); at !== -1 && at < bytesRead; at = buffer.indexOf(0x0a, at + 1))
        lines++;
      last = buffer[bytesRead - 1]!;
      position += bytesRead;
    }
  } finally {
    await opened.value.close();
  }
  return last === -1 || last === 0x0a ? lines : lines + 1;
}
