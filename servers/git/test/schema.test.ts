import { createGitRepo } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { callError, callOk, startGit } from './helpers.js';

describe("git_diff's modes in its schema", () => {
  it.each(['v2', 'v1'] as const)(
    'tools/list carries the two modes, and mixing them is refused naming both arguments (%s)',
    async (kind) => {
      const repo = await createGitRepo({ files: { 'a.txt': 'a\n' } });
      await repo.commit('second', { 'a.txt': 'b\n' });
      const client = await startGit(kind, [repo.dir]);
      const { tools } = await client.listTools();
      const schema = tools.find((tool) => tool.name === 'git_diff')?.inputSchema as Record<string, unknown>;
      expect({
        type: schema['type'],
        description: schema['description'],
        properties: Object.keys(schema['properties'] as object),
        additionalProperties: schema['additionalProperties'],
        not: schema['not'],
        dependentRequired: schema['dependentRequired'],
      }).toEqual({
        type: 'object',
        description:
          'One of: Working tree or index: against the index, HEAD or `from`. | Between two commits: `from` and `to`, both required; `staged` does not apply.',
        properties: ['repo', 'paths', 'maxBytes', 'maxFiles', 'cursor', 'staged', 'from', 'to'],
        additionalProperties: false,
        not: { anyOf: [{ required: ['staged', 'to'] }] },
        dependentRequired: { to: ['from'] },
      });
      // The Anthropic API refuses a whole request whose tool list has these at the top of a schema.
      expect(
        tools.flatMap((tool) =>
          ['oneOf', 'anyOf', 'allOf']
            .filter((key) => key in (tool.inputSchema as object))
            .map((key) => `${tool.name}.${key}`),
        ),
      ).toEqual([]);

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
