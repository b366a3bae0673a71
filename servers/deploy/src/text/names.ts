/**
 * Characters that would let a file name change the text around it: line breaks and other controls
 * (C0, DEL, C1), the Unicode line and paragraph separators, and the marks that reorder text (bidi
 * controls, the byte-order mark).
 */
const unsafe = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/;
const unescapedByJson = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;

/**
 * A file name (or link target) as text output shows it: as it is when it holds nothing unsafe,
 * otherwise as a JSON string literal with every unsafe character escaped, so a name can never print
 * lines or reorder text of its own.
 */
export function shownName(name: string): string {
  if (!unsafe.test(name)) return name;
  return JSON.stringify(name).replace(
    unescapedByJson,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

/** A name inside a sentence: `'name'`, or the JSON literal when it holds unsafe characters. */
export function quotedName(name: string): string {
  return unsafe.test(name) ? shownName(name) : `'${name}'`;
}
