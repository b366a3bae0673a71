import { describe, expect, it } from 'vitest';
import { redact } from '../src/audit/redact.js';
import { canonicalJson } from '../src/canonical.js';

describe('canonicalJson and redact keep every own key', () => {
  it('an own "__proto__" member (as JSON.parse makes it) stays data, so different arguments never hash alike', () => {
    const parsed = JSON.parse('{"b":1,"__proto__":{"force":true},"a":2}') as Record<string, unknown>;
    expect(canonicalJson(parsed)).toBe('{"__proto__":{"force":true},"a":2,"b":1}');
    expect(canonicalJson(parsed)).not.toBe(canonicalJson({ a: 2, b: 1 }));
    expect(JSON.stringify(redact(parsed))).toBe('{"b":1,"__proto__":{"force":true},"a":2}');
    // Nothing leaked into a prototype on the way.
    expect(Object.getPrototypeOf(JSON.parse(canonicalJson(parsed)))).toBe(Object.prototype);
  });
});
