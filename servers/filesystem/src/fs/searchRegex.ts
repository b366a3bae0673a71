import { setFlagsFromString } from 'node:v8';
import { fail, ok, type Outcome } from '@keel/kit';
import { nestedQuantifier } from './regexRisk.js';

let linearFallback: boolean | undefined;

/**
 * Turns on V8's linear-time fallback: a regex that backtracks too much is re-run on V8's
 * automaton engine, whose time is linear in the input. Ordinary searches keep the backtracking
 * engine, which is 30-50× faster than the linear one and 3-10× faster than RE2 in JavaScript
 * (re2js) on source text. The flags are process-wide, and change nothing for a regex that does not
 * run away. Returns false where this V8 lacks them.
 */
function enableLinearFallback(): boolean {
  if (linearFallback !== undefined) return linearFallback;
  try {
    setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');
    setFlagsFromString('--enable-experimental-regexp-engine');
    // The `l` (linear) flag exists only once the flag above is set, which a linter cannot know.
    const linearFlag = 'l';
    new RegExp('a', linearFlag);
    linearFallback = true;
  } catch {
    linearFallback = false;
  }
  return linearFallback;
}

/**
 * A search regex that cannot run away. Where V8 can fall back to its linear engine, a pattern is
 * accepted only when that engine can run it (no backreferences, lookarounds or large counted
 * repeats), so no input can make it exponential. The linear engine has no `i` flag, so a
 * case-insensitive pattern is case-folded into classes (`a` → `[aA]`) instead. Where V8 has no such
 * engine, the nested-quantifier heuristic guards.
 */
export function compileSearchRegex(
  pattern: string,
  options: { global: boolean; multiline: boolean; caseSensitive: boolean },
): Outcome<RegExp> {
  const linear = enableLinearFallback();
  const source = linear && !options.caseSensitive ? caseFold(pattern) : pattern;
  const flags = `${options.global ? 'g' : ''}${options.multiline ? 'm' : ''}${options.caseSensitive || linear ? '' : 'i'}`;
  let regex: RegExp;
  try {
    new RegExp(pattern);
    regex = new RegExp(source, flags);
  } catch (error) {
    return fail(
      'INVALID_ARGUMENT',
      `pattern is not a valid regular expression: ${(error as Error).message}`,
      {
        hint: 'Fix the regex (JavaScript syntax), or pass literal: true to search for the text as is.',
      },
    );
  }
  if (linear) {
    try {
      new RegExp(source, `${flags}l`);
    } catch {
      return fail(
        'INVALID_ARGUMENT',
        'pattern uses a backreference, a lookaround or a large repeat count, which can take exponential time',
        {
          hint: 'Rewrite it without \\1, \\k<name>, (?=…), (?!…), (?<=…), (?<!…) and with repeat counts of at most 15 (a+ rather than a{1,100}) — e.g. search the plain part and use contextLines — or search a literal.',
        },
      );
    }
    return ok(regex);
  }
  const risky = nestedQuantifier(pattern);
  if (risky !== undefined) {
    return fail(
      'INVALID_ARGUMENT',
      `pattern has a nested quantifier ('${risky}'), which can take exponential time`,
      {
        hint: 'Rewrite it without a repeated group that itself repeats (e.g. "(ab)+" rather than "(a+b)+"), or search a literal.',
      },
    );
  }
  return ok(regex);
}

/**
 * The pattern with every letter made to match both cases, for an engine without the `i` flag:
 * `a` → `[aA]`, and inside a class `a-f` → `a-fA-F`. Escapes (`\\w`, `\\x41`) and group names are
 * kept as they are.
 */
export function caseFold(pattern: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i]!;
    if (char === '\\') {
      out += char + (pattern[i + 1] ?? '');
      i++;
      continue;
    }
    if (!inClass && pattern.startsWith('(?<', i) && pattern[i + 3] !== '=' && pattern[i + 3] !== '!') {
      const end = pattern.indexOf('>', i);
      if (end !== -1) {
        out += pattern.slice(i, end + 1);
        i = end;
        continue;
      }
    }
    if (char === '[' && !inClass) {
      inClass = true;
      out += char;
      if (pattern[i + 1] === '^') out += pattern[++i];
      continue;
    }
    if (char === ']' && inClass) {
      inClass = false;
      out += char;
      continue;
    }
    const lower = char.toLowerCase();
    const upper = char.toUpperCase();
    const letter = lower !== upper && lower.length === 1 && upper.length === 1;
    if (inClass) {
      // A range of letters of one case gets the same range in the other case.
      const to = pattern[i + 2];
      if (pattern[i + 1] === '-' && to !== undefined && to !== ']' && to !== '\\') {
        out += `${char}-${to}`;
        const toLower = to.toLowerCase();
        const toUpper = to.toUpperCase();
        if (letter && toLower !== toUpper) {
          if (char === lower && to === toLower) out += `${upper}-${toUpper}`;
          else if (char === upper && to === toUpper) out += `${lower}-${toLower}`;
        }
        i += 2;
        continue;
      }
      out += letter ? `${lower}${upper}` : char;
      continue;
    }
    out += letter ? `[${lower}${upper}]` : char;
  }
  return out;
}
