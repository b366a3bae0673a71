import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const src = fileURLToPath(new URL('../src', import.meta.url));
const wallClock = /\bDate\.now\b|new Date\(\s*\)/;

const sources = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) return sources(file);
    return entry.name.endsWith('.ts') ? [file] : [];
  });

describe('one clock', () => {
  // An operation that reads the wall clock in one place and an injected clock in another expires
  // what it just made (an approval asked under a fixed clock looked expired to the store). Time
  // comes from the caller; `src/clock.ts` holds the one wall-clock reader, which only edges pass in.
  it('reads the wall clock nowhere in the supervisor but src/clock.ts', () => {
    const offenders = sources(src)
      .filter((file) => path.relative(src, file) !== 'clock.ts')
      .flatMap((file) =>
        readFileSync(file, 'utf8')
          .split('\n')
          .flatMap((line, i) =>
            wallClock.test(line) ? [`${path.relative(src, file)}:${i + 1}: ${line.trim()}`] : [],
          ),
      );
    expect(offenders).toEqual([]);
  });
});
