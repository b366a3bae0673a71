import { describe, expect, it } from 'vitest';
import { caseFold, compileSearchRegex } from '../src/fs/searchRegex.js';

describe('case folding for the linear engine', () => {
  it.each([
    ['abc', '[aA][bB][cC]'],
    ['[a-f0-9]+', '[a-fA-F0-9]+'],
    ['[^A-Z]', '[^A-Za-z]'],
    ['\\w+Error', '\\w+[eE][rR][rR][oO][rR]'],
    ['(?<name>x)y', '(?<name>[xX])[yY]'],
    ['x{2,3}', '[xX]{2,3}'],
    ['[é]', '[éÉ]'],
  ])('%s → %s', (pattern, folded) => {
    expect(caseFold(pattern)).toBe(folded);
  });

  it('matches what the i flag matches on ASCII text', () => {
    const lines = ['Hello World', 'HELLO', 'hello-x', 'Help', 'X12'];
    for (const pattern of ['hello', '^h[a-z]+', '[A-F]', 'x\\d+', 'WORLD$']) {
      const folded = compileSearchRegex(pattern, { global: false, multiline: false, caseSensitive: false });
      if (!folded.ok) throw new Error(folded.error.message);
      const native = new RegExp(pattern, 'i');
      expect(lines.map((line) => folded.value.test(line))).toEqual(lines.map((line) => native.test(line)));
    }
  });
});

describe('search regexes', () => {
  it('refuses what the linear engine cannot run and reports a syntax error as such', () => {
    const refused = (pattern: string) => {
      const result = compileSearchRegex(pattern, { global: true, multiline: false, caseSensitive: true });
      return result.ok ? 'accepted' : result.error.message.split(':')[0];
    };
    expect(['(x)\\1', '(?=a)b', '(?<!a)b', 'a{1,100}', '(', '(a|aa)+$', 'a{2,15}'].map(refused)).toEqual([
      'pattern uses a backreference, a lookaround or a large repeat count, which can take exponential time',
      'pattern uses a backreference, a lookaround or a large repeat count, which can take exponential time',
      'pattern uses a backreference, a lookaround or a large repeat count, which can take exponential time',
      'pattern uses a backreference, a lookaround or a large repeat count, which can take exponential time',
      'pattern is not a valid regular expression',
      'accepted',
      'accepted',
    ]);
  });
});
