import { createGitRepo } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { callError, callOk, startGit } from './helpers.js';

describe("git_diff's modes in its schema", () => {
  it.each(['v2', 'v1'] as const)(
    'tools/list carries both alternatives, and mixing them is refused naming both arguments (%s)',
    async (kind) => {
      const repo = await createGitRepo({ files: { 'a.txt': 'a\n' } });
      await repo.commit('second', { 'a.txt': 'b\n' });
      const client = await startGit(kind, [repo.dir]);
      const { tools } = await client.listTools();
      const schema = tools.find((tool) => tool.name === 'git_diff')?.inputSchema as {
        type: string;
        properties: Record<string, unknown>;
        oneOf: Array<{ description: string; properties: Record<string, unknown>; required?: string[] }>;
      };
      expect(schema.type).toBe('object');
      expect(Object.keys(schema.properties)).toEqual([
        'repo',
        'paths',
        'maxBytes',
        'maxFiles',
        'cursor',
        'staged',
        'from',
        'to',
      ]);
      expect(
        schema.oneOf.map((branch) => ({
          description: branch.description,
          arguments: Object.keys(branch.properties).filter((key) => ['staged', 'from', 'to'].includes(key)),
          required: branch.required ?? [],
        })),
      ).toEqual([
        {
          description: 'Working tree or index: against the index, HEAD or `from`.',
          arguments: ['staged', 'from'],
          required: [],
        },
        {
          description: 'Between two commits: `from` and `to`, both required; `staged` does not apply.',
          arguments: ['from', 'to'],
          required: ['from', 'to'],
        },
      ]);

      expect(await callError(client, 'git_diff', { staged: true, from: 'HEAD~1', to: 'HEAD' })).toEqual({
        code: 'INVALID_ARGUMENT',
        message: 'invalid arguments for git_diff: `staged` and `to` cannot be used together',
        hint: 'Pass the arguments of one mode only: `staged`, or `to` (the input schema lists the alternatives).',
        retryable: false,
        details: { conflicting: ['staged', 'to'], modes: [['staged'], ['to']] },
      });
      // Each mode alone still works.
      expect((await callOk(client, 'git_diff', { from: 'HEAD~1', to: 'HEAD' }))['mode']).toBe('commits');
      expect((await callOk(client, 'git_diff', { staged: true }))['mode']).toBe('staged');
    },
  );
});
