import { describe, expect, it } from 'vitest';
import * as z from 'zod';
import { defineTool } from '../src/defineTool.js';
import { ok, type ToolError } from '../src/errors.js';
import { createPathJail } from '../src/jail.js';
import { createServer, ERROR_META_KEY } from '../src/server.js';

const common = { name: z.string().describe('What to read.') };
const windowTool = defineTool({
  name: 'window',
  title: 'Window',
  description: 'Reads by lines or from the end.',
  input: z.xor([
    z
      .strictObject({
        ...common,
        from: z.number().int().optional().describe('First line.'),
        to: z.number().int().optional().describe('Last line.'),
      })
      .describe('By lines.'),
    z.strictObject({ ...common, tail: z.number().int().describe('Last lines.') }).describe('From the end.'),
  ]),
  output: z.object({ mode: z.string() }),
  effect: 'write',
  handler: async (input) => ok({ mode: 'tail' in input ? `tail ${input.tail}` : `lines ${input.from ?? 1}` }),
});

async function server() {
  return createServer({ name: 's', version: '1', tools: [windowTool], jail: await createPathJail([]) });
}
const errorOf = (result: { _meta?: Record<string, unknown> | undefined }) =>
  result._meta?.[ERROR_META_KEY] as ToolError | undefined;

describe('inputs whose arguments exclude each other', () => {
  it('publishes one object schema the Anthropic API accepts: no top-level oneOf/anyOf, exclusions under not', async () => {
    const [tool] = (await server()).listTools();
    // No `$schema` and no ±(2^53-1) on integers: every request to a model would carry them for nothing.
    const int = { type: 'integer' };
    expect(tool?.inputSchema).toEqual({
      type: 'object',
      description: 'One of: By lines. | From the end.',
      properties: {
        name: { type: 'string', description: 'What to read.' },
        from: { ...int, description: 'First line.' },
        to: { ...int, description: 'Last line.' },
        idempotencyKey: tool?.inputSchema.properties?.['idempotencyKey'],
        tail: { ...int, description: 'Last lines.' },
      },
      required: ['name'],
      additionalProperties: false,
      not: { anyOf: [{ required: ['from', 'tail'] }, { required: ['to', 'tail'] }] },
    });
    expect(tool?.inputSchema.properties?.['idempotencyKey']).toMatchObject({ type: 'string' });
  });

  it('describes a discriminator by its variants and an argument that needs another as dependentRequired', async () => {
    const diff = defineTool({
      name: 'diff',
      title: 'Diff',
      description: 'Against the tree, or between two commits.',
      input: z.discriminatedUnion('mode', [
        z.strictObject({ mode: z.literal('tree').describe('Against the tree.') }),
        z.strictObject({
          mode: z.literal('commits').describe('Between commits.'),
          from: z.string().describe('Base.'),
          to: z.string().describe('Target.'),
        }),
      ]),
      output: z.object({}),
      effect: 'read',
      handler: async () => ok({}),
    });
    const keel = createServer({ name: 's', version: '1', tools: [diff], jail: await createPathJail([]) });
    expect(keel.listTools()[0]?.inputSchema).toEqual({
      type: 'object',
      properties: {
        mode: {
          anyOf: [
            { type: 'string', const: 'tree', description: 'Against the tree.' },
            { type: 'string', const: 'commits', description: 'Between commits.' },
          ],
        },
        from: { type: 'string', description: 'Base.' },
        to: { type: 'string', description: 'Target.' },
      },
      required: ['mode'],
      additionalProperties: false,
      dependentRequired: { from: ['to'], to: ['from'] },
    });
  });

  it('runs each alternative, the mutating tool keeping its idempotency key argument', async () => {
    const keel = await server();
    expect((await keel.callTool('window', { name: 'a', from: 3 })).structuredContent).toEqual({
      mode: 'lines 3',
    });
    expect(
      (await keel.callTool('window', { name: 'a', tail: 5, idempotencyKey: 'k-1' })).structuredContent,
    ).toEqual({ mode: 'tail 5' });
  });

  it('refuses arguments of two alternatives with INVALID_ARGUMENT naming both, and a hint', async () => {
    const result = await (await server()).callTool('window', { name: 'a', to: 9, tail: 5 });
    expect(result.isError).toBe(true);
    expect(errorOf(result)).toEqual({
      code: 'INVALID_ARGUMENT',
      message: 'invalid arguments for window: `to` and `tail` cannot be used together',
      hint: 'Pass the arguments of one mode only: `from`/`to`, or `tail` (the input schema lists the alternatives).',
      retryable: false,
      details: { conflicting: ['to', 'tail'], modes: [['from', 'to'], ['tail']] },
    });
  });

  it('still refuses an integer past 2^53-1, though the published schema no longer says so', async () => {
    const error = errorOf(await (await server()).callTool('window', { name: 'a', tail: 2 ** 53 }));
    expect(error?.code).toBe('INVALID_ARGUMENT');
    expect(error?.details).toEqual({
      issues: [{ path: ['tail'], message: 'Too big: expected int to be <=9007199254740991' }],
    });
  });

  it('reports the issues of the alternative the arguments chose, not only "invalid input"', async () => {
    const error = errorOf(await (await server()).callTool('window', { name: 'a', tail: 'x' }));
    expect(error?.code).toBe('INVALID_ARGUMENT');
    expect(error?.details).toEqual({
      issues: [{ path: ['tail'], message: 'Invalid input: expected number, received string' }],
    });
    expect(error?.hint).toBe(
      "Fix tail to match the tool's input schema (tools/list shows it) and call again.",
    );
  });
});
