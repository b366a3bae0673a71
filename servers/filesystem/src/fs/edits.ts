import { fail, ok, type Outcome } from '@keel/kit';

export interface TextEdit {
  oldText: string;
  newText: string;
  replaceAll: boolean;
}

function lineOf(text: string, index: number): number {
  let line = 1;
  let at = text.indexOf('\n');
  while (at !== -1 && at < index) {
    line++;
    at = text.indexOf('\n', at + 1);
  }
  return line;
}

function occurrences(text: string, needle: string): number[] {
  const found: number[] = [];
  let at = text.indexOf(needle);
  while (at !== -1) {
    found.push(at);
    at = text.indexOf(needle, at + needle.length);
  }
  return found;
}

/**
 * Applies exact-text edits in order, each to the result of the previous. An oldText that does not
 * occur, or occurs several times without replaceAll, fails naming the edit and the lines. In a CRLF
 * file, LF in oldText/newText matches and is written as CRLF.
 */
export function applyEdits(
  before: string,
  edits: readonly TextEdit[],
  shown: string,
): Outcome<{ text: string; replacements: number }> {
  const crlf = before.includes('\r\n');
  let text = before;
  let replacements = 0;
  for (const [i, edit] of edits.entries()) {
    let oldText = edit.oldText;
    let newText = edit.newText;
    let found = occurrences(text, oldText);
    if (found.length === 0 && crlf && !oldText.includes('\r\n')) {
      oldText = oldText.replaceAll('\n', '\r\n');
      newText = newText.replace(/\r?\n/g, '\r\n');
      found = occurrences(text, oldText);
    }
    const preview = JSON.stringify(edit.oldText.length > 80 ? `${edit.oldText.slice(0, 80)}…` : edit.oldText);
    if (found.length === 0) {
      return fail(
        'NOT_FOUND',
        `edit ${i + 1}: oldText ${preview} does not occur in '${shown}'${i > 0 ? ' (after the earlier edits)' : ''}`,
        {
          hint: 'Read the file again and copy the exact text, whitespace and indentation included.',
          details: { edit: i + 1 },
        },
      );
    }
    if (found.length > 1 && !edit.replaceAll) {
      const lines = found.slice(0, 20).map((at) => lineOf(text, at));
      return fail(
        'CONFLICT',
        `edit ${i + 1}: oldText ${preview} occurs ${found.length} times in '${shown}', on lines ${lines.join(', ')}${found.length > 20 ? ', …' : ''}`,
        {
          hint: 'Include surrounding lines in oldText so it matches once, or pass replaceAll: true to replace every occurrence.',
          details: { edit: i + 1, matches: found.length, lines },
        },
      );
    }
    text = text.split(oldText).join(newText);
    replacements += found.length;
  }
  return ok({ text, replacements });
}

/**
 * After a crash: did these edits already turn some content into `current`? Undoes them in reverse
 * order (newText back to oldText) and accepts the result only if redoing the edits on it gives
 * `current` again and no edit could apply twice (a newText that contains its oldText). Returns the
 * content before the edits, or undefined when `current` does not show them.
 */
export function undoEdits(current: string, edits: readonly TextEdit[]): string | undefined {
  if (edits.some((edit) => edit.newText.length === 0 || edit.newText.includes(edit.oldText)))
    return undefined;
  let text = current;
  const crlf = current.includes('\r\n');
  for (const edit of [...edits].reverse()) {
    let { oldText, newText } = edit;
    if (crlf && !text.includes(newText) && !newText.includes('\r\n')) {
      oldText = oldText.replaceAll('\n', '\r\n');
      newText = newText.replace(/\r?\n/g, '\r\n');
    }
    const found = occurrences(text, newText).length;
    if (found === 0 || (found > 1 && !edit.replaceAll)) return undefined;
    text = text.split(newText).join(oldText);
  }
  const redone = applyEdits(text, edits, '');
  return redone.ok && redone.value.text === current ? text : undefined;
}
