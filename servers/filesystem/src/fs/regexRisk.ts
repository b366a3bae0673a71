/**
 * Finds a quantified group that itself contains a quantifier — `(a+)+`, `(\w*)*`, `(x+y?){2,}` —
 * the shape behind most catastrophic backtracking. JavaScript regexes run to completion on the main
 * thread, where no timeout can stop them, so such patterns are refused up front. It is a heuristic:
 * overlapping alternations under one quantifier, like `(a|aa)+`, are not caught.
 */
export function nestedQuantifier(source: string): string | undefined {
  const groups: Array<{ start: number; quantified: boolean }> = [];
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const char = source[i]!;
    if (char === '\\') {
      i++;
      continue;
    }
    if (inClass) {
      if (char === ']') inClass = false;
      continue;
    }
    if (char === '[') {
      inClass = true;
      continue;
    }
    if (char === '(') {
      groups.push({ start: i, quantified: false });
      continue;
    }
    const isQuantifier =
      char === '*' || char === '+' || (char === '{' && /^\{\d+(,\d*)?\}/.test(source.slice(i)));
    if (char === ')') {
      const group = groups.pop();
      if (group === undefined) continue;
      const next = source[i + 1];
      const braces = next === '{' ? /^\{\d+,\d*\}/.exec(source.slice(i + 1))?.[0] : undefined;
      const quantifiedAfter = next === '*' || next === '+' || braces !== undefined;
      if (quantifiedAfter && group.quantified)
        return source.slice(group.start, i + 1 + (braces?.length ?? 1));
      // A group that contains a quantifier makes its enclosing group contain one too.
      if (group.quantified || quantifiedAfter) {
        const parent = groups[groups.length - 1];
        if (parent !== undefined) parent.quantified = true;
      }
      continue;
    }
    if (isQuantifier) {
      const current = groups[groups.length - 1];
      if (current !== undefined) current.quantified = true;
    }
  }
  return undefined;
}
