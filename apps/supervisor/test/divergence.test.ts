import { describe, expect, it } from 'vitest';
import { firstDifference } from '../src/engine/resume.js';

describe('firstDifference: where a resumed request first departs from the recorded one', () => {
  it('names the first differing path, depth first, keys in order', () => {
    const recorded = {
      messages: [
        { role: 'system', content: 'a' },
        { role: 'user', content: 'x' },
      ],
      tools: [],
    };
    expect(firstDifference(recorded, structuredClone(recorded))).toBeUndefined();
    expect(
      firstDifference(recorded, {
        ...recorded,
        messages: [{ role: 'system', content: 'b' }, recorded.messages[1]],
      }),
    ).toBe('$.messages[0].content');
    expect(firstDifference(recorded, { ...recorded, messages: [recorded.messages[0]] })).toBe(
      '$.messages[1]',
    );
    expect(firstDifference(recorded, { ...recorded, tools: [{ name: 'x' }] })).toBe('$.tools[0]');
    expect(firstDifference({ a: 1 }, { a: 1, 'b c': 2 })).toBe('$["b c"]');
    expect(firstDifference({ a: [1] }, { a: { 0: 1 } })).toBe('$.a');
  });
});
