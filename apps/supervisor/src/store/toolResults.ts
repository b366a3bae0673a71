/**
 * A tool result is kept as the model read it (its text) and as the server structured it, and the
 * two mostly carry the same bytes: `read_file`'s text is the file's content, `edit_file`'s holds its
 * diff. Stored, the text keeps only what surrounds the longest top-level string of the structured
 * result it contains (`{ $in: key, before, after }`); reading puts it back, so every reader
 * (`keel show`, replay, resume, the console) sees the result exactly as it was recorded.
 */

/** Shorter shared strings are left in the text: a reference would save next to nothing. */
export const minSharedChars = 64;

interface StoredText {
  $in: string;
  before: string;
  after: string;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The result as the store keeps it: the text as a reference into the structured result where it can be. */
export function storedResult(result: unknown): unknown {
  if (!isObject(result) || typeof result['text'] !== 'string' || !isObject(result['structured']))
    return result;
  const text = result['text'];
  let best: { key: string; value: string; at: number } | undefined;
  for (const [key, value] of Object.entries(result['structured'])) {
    if (typeof value !== 'string' || value.length < minSharedChars) continue;
    if (best !== undefined && value.length <= best.value.length) continue;
    const at = text.indexOf(value);
    if (at !== -1) best = { key, value, at };
  }
  if (best === undefined) return result;
  const stored: StoredText = {
    $in: best.key,
    before: text.slice(0, best.at),
    after: text.slice(best.at + best.value.length),
  };
  return { ...result, text: stored };
}

/** The result as it was recorded, from what the store keeps (a result stored whole comes back as it is). */
export function resultFromStored(stored: unknown): unknown {
  if (!isObject(stored) || !isObject(stored['text']) || !isObject(stored['structured'])) return stored;
  const text = stored['text'] as unknown as StoredText;
  const shared = stored['structured'][text.$in];
  if (typeof shared !== 'string') return stored;
  return { ...stored, text: text.before + shared + text.after };
}
