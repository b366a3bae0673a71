import { mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { isInputRequiredResult, type InputRequiredResult } from '@modelcontextprotocol/server';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as z from 'zod';
import { defineTool } from '../src/defineTool.js';
import { fail, ok, type ToolError } from '../src/errors.js';
import { createPathJail, type PathJail } from '../src/jail.js';
import { createServer, ERROR_META_KEY } from '../src/server.js';

let dir: string;
let jail: PathJail;
beforeEach(async () => {
  dir = await realpath(await mkdtemp(path.join(tmpdir(), 'keel-ask-')));
  jail = await createPathJail([dir]);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A tool that ships `plan` after the person confirms it; counts what it really did. */
function shipTool(shipped: string[]) {
  return defineTool({
    name: 'ship',
    title: 'Ship',
    description: 'Ships a plan once a person confirms.',
    input: z.object({ plan: z.string().describe('Plan.') }),
    output: z.object({ shipped: z.string(), by: z.string() }),
    effect: 'write',
    handler: async (input, ctx) => {
      const asked = ctx.ask({
        id: 'confirm',
        message: `Ship ${input.plan}?`,
        schema: z.object({ confirm: z.boolean().describe('Ship it.') }),
        about: `plan:${input.plan}`,
        ttlMs: 60_000,
      });
      switch (asked.status) {
        case 'pending':
          return asked.outcome;
        case 'unsupported':
          return fail('APPROVAL_REQUIRED', 'no one to ask');
        case 'refused':
          return { ok: false, error: asked.error };
        case 'answered':
          if (asked.action !== 'accept' || !asked.content.confirm)
            return fail('PERMISSION_DENIED', `the person answered ${asked.action}`);
          shipped.push(input.plan);
          return ok({ shipped: input.plan, by: 'the person at the client' });
      }
    },
  });
}

const errorOf = (result: unknown) =>
  (result as { _meta?: Record<string, unknown> })._meta?.[ERROR_META_KEY] as ToolError | undefined;

function setup() {
  let now = 1_000_000;
  const shipped: string[] = [];
  const server = createServer({ name: 's', version: '1', jail, tools: [shipTool(shipped)], now: () => now });
  const first = async (plan = 'p1', key?: string) => {
    const result = await server.runCall(
      'ship',
      { plan, ...(key === undefined ? {} : { idempotencyKey: key }) },
      { asking: { canElicit: true, inputResponses: undefined, requestState: undefined } },
    );
    if (!isInputRequiredResult(result)) throw new Error(`expected a question, got ${JSON.stringify(result)}`);
    return result as InputRequiredResult & { requestState: string };
  };
  const answer = (
    plan: string,
    requestState: string | undefined,
    response: Record<string, unknown> | undefined,
    key?: string,
  ) =>
    server.runCall(
      'ship',
      { plan, ...(key === undefined ? {} : { idempotencyKey: key }) },
      {
        asking: {
          canElicit: true,
          inputResponses: response === undefined ? undefined : { confirm: response },
          requestState,
        },
      },
    );
  return { server, shipped, first, answer, advance: (ms: number) => (now += ms) };
}

const accept = { action: 'accept', content: { confirm: true } };

describe('ctx.ask', () => {
  it('asks with a form and a sealed state, then takes the answer that comes back with it', async () => {
    const { first, answer, shipped } = setup();
    const question = await first();
    expect(question.inputRequests).toEqual({
      confirm: {
        method: 'elicitation/create',
        params: {
          mode: 'form',
          message: 'Ship p1?',
          requestedSchema: {
            type: 'object',
            properties: { confirm: { type: 'boolean', description: 'Ship it.' } },
            required: ['confirm'],
          },
        },
      },
    });
    expect(shipped).toEqual([]);
    const done = await answer('p1', question.requestState, accept);
    expect((done as { structuredContent?: unknown }).structuredContent).toEqual({
      shipped: 'p1',
      by: 'the person at the client',
    });
    expect(shipped).toEqual(['p1']);
  });

  it.each([
    ['decline', { action: 'decline' }],
    ['cancel', { action: 'cancel' }],
  ])('reports %s as the answer, and nothing happens', async (action, response) => {
    const { first, answer, shipped } = setup();
    const question = await first();
    expect(errorOf(await answer('p1', question.requestState, response))).toMatchObject({
      code: 'PERMISSION_DENIED',
      message: `the person answered ${action}`,
    });
    expect(shipped).toEqual([]);
  });

  it('refuses an altered, a foreign, an expired or a missing request state', async () => {
    const { first, answer, shipped, advance } = setup();
    const question = await first('p1');
    const other = await first('p2');
    const body = question.requestState.split('.')[1]!;
    const flipped = `${body.slice(0, 10)}${body[10] === 'A' ? 'B' : 'A'}${body.slice(11)}`;
    const tampered = question.requestState.replace(body, flipped);
    const reasonOf = async (state: string | undefined) =>
      (errorOf(await answer('p1', state, accept))?.details as { reason?: string } | undefined)?.reason;
    expect(await reasonOf(tampered)).toBe('tampered');
    expect(await reasonOf('not a state')).toBe('tampered');
    // Sealed for plan p2: answering p1's call with it is refused.
    expect(await reasonOf(other.requestState)).toBe('foreign');
    // An answer with no question behind it.
    expect(await reasonOf(undefined)).toBe('foreign');
    advance(60_001);
    expect(await reasonOf(question.requestState)).toBe('expired');
    expect(shipped).toEqual([]);
  });

  it('is unsupported for a client that cannot show a form', async () => {
    const { server } = setup();
    const result = await server.runCall(
      'ship',
      { plan: 'p1' },
      {
        asking: { canElicit: false, inputResponses: undefined, requestState: undefined },
      },
    );
    expect(errorOf(result)?.code).toBe('APPROVAL_REQUIRED');
    expect(errorOf(await server.callTool('ship', { plan: 'p1' }))?.code).toBe('APPROVAL_REQUIRED');
  });

  it('keeps an idempotency key free while the question is open, then stores the answered result', async () => {
    const { first, answer, shipped } = setup();
    const question = await first('p1', 'k');
    const done = await answer('p1', question.requestState, accept, 'k');
    expect(errorOf(done)).toBeUndefined();
    const replay = await answer('p1', undefined, undefined, 'k');
    expect((replay as { _meta?: Record<string, unknown> })._meta?.['keel/idempotency']).toMatchObject({
      replayed: true,
    });
    expect(shipped).toEqual(['p1']);
  });
});
