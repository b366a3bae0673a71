import { describe, expect, it } from 'vitest';
import { nestedQuantifier } from '../src/fs/regexRisk.js';

describe('nested quantifier detection', () => {
  it.each([
    ['(a+)+$', '(a+)+'],
    ['^(\\w*)*x', '(\\w*)*'],
    ['(x+y?){2,}', '(x+y?){2,}'],
    ['((ab)+c)*', '((ab)+c)*'],
    ['(?:a|b+)+', '(?:a|b+)+'],
  ])('%s is refused', (pattern, culprit) => {
    expect(nestedQuantifier(pattern)).toBe(culprit);
  });

  it.each(['TODO', '(ab)+', 'a+b*c?', '[(+]+', '\\(a+\\)+', 'foo(bar)?baz', '(a{2})', 'x{1,3}(yz)*'])(
    '%s passes',
    (pattern) => {
      expect(nestedQuantifier(pattern)).toBeUndefined();
    },
  );
});
