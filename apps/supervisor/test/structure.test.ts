import { fileURLToPath } from 'node:url';
import madge from 'madge';
import { describe, expect, it } from 'vitest';

const src = fileURLToPath(new URL('../src', import.meta.url));

describe("the supervisor's source", () => {
  it('has no import circles, type-only imports included', async () => {
    // See the kit's structure test for why madge runs without a tsconfig.
    const graph = await madge(src, { fileExtensions: ['ts'] });
    const deps = graph.obj();
    expect(Object.keys(deps).length).toBeGreaterThan(100);
    // The graph is read through, type-only imports too.
    expect(deps['engine/resume.ts']).toContain('engine/recordedReply.ts');
    expect(graph.circular()).toEqual([]);
  });
});
