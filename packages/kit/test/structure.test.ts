import { fileURLToPath } from 'node:url';
import madge from 'madge';
import { describe, expect, it } from 'vitest';

const src = fileURLToPath(new URL('../src', import.meta.url));

describe("the kit's source", () => {
  it('has no import circles, type-only imports included', async () => {
    // madge without a tsconfig: TypeScript 7 ships no JS API for it to read one, and the kit's
    // relative `.js` specifiers resolve to their `.ts` files without it.
    const graph = await madge(src, { fileExtensions: ['ts'] });
    expect(Object.keys(graph.obj()).length).toBeGreaterThan(50);
    expect(graph.circular()).toEqual([]);
  });

  it('reads the whole graph: a file every other file reaches is in it with its imports', async () => {
    const graph = await madge(src, { fileExtensions: ['ts'] });
    const deps = graph.obj();
    expect(deps['toolCall.ts']).toContain('pipeline/prepare.ts');
    expect(deps['pipeline/prepare.ts']).toEqual(['callContext.ts', 'errors.ts', 'jail.ts', 'prepare.ts']);
  });
});
