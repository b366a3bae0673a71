import { mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as z from 'zod';
import { kitCrashPointFrom, noKitCrashPoint, type KitCrashPointName } from '../src/crashPoint.js';
import { defineTool } from '../src/defineTool.js';
import { KeelError, ok } from '../src/errors.js';
import { createPathJail, type PathJail } from '../src/jail.js';
import { createSilentLogger } from '../src/logger.js';
import { createServer } from '../src/server.js';

let dir: string;
let jail: PathJail;
beforeEach(async () => {
  dir = await realpath(await mkdtemp(path.join(tmpdir(), 'keel-crash-')));
  jail = await createPathJail([dir]);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const silent = createSilentLogger();

describe('kitCrashPointFrom (KEEL_CRASH_AT)', () => {
  it('unset, empty or another component’s name arms nothing', () => {
    for (const at of [undefined, '', 'deploy.after-switch', 'supervisor.after-claim'])
      expect(kitCrashPointFrom(at, silent)).toBe(noKitCrashPoint);
  });

  it('an unknown kit point is refused with the list', () => {
    let thrown: unknown;
    try {
      kitCrashPointFrom('kit.nowhere', silent);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(KeelError);
    expect([(thrown as KeelError).code, (thrown as KeelError).message, (thrown as KeelError).hint]).toEqual([
      'INVALID_ARGUMENT',
      "KEEL_CRASH_AT='kit.nowhere' is not a crash point of the kit",
      'Crash points: kit.after-claim, kit.after-effect.',
    ]);
  });
});

describe('the pipeline reaches the crash points of a keyed call, in order', () => {
  const effects: string[] = [];
  const tool = defineTool({
    name: 'bump',
    title: 'Bump',
    description: 'Counts its runs.',
    input: z.object({ by: z.number().int().describe('Amount.') }),
    output: z.object({ by: z.number() }),
    effect: 'write',
    handler: async (input) => {
      effects.push('effect');
      return ok({ by: input.by });
    },
  });

  it('after the claim, then after the effect; an unkeyed call and a replay reach none', async () => {
    effects.length = 0;
    const server = createServer({
      name: 'crash',
      version: '0.0.0',
      tools: [tool],
      jail,
      crashPoint: (name: KitCrashPointName) => void effects.push(name),
    });
    await server.callTool('bump', { by: 1 }, { meta: { 'keel/idempotency-key': 'k' } });
    expect(effects).toEqual(['kit.after-claim', 'effect', 'kit.after-effect']);
    effects.length = 0;
    await server.callTool('bump', { by: 1 }, { meta: { 'keel/idempotency-key': 'k' } });
    await server.callTool('bump', { by: 2 });
    expect(effects).toEqual(['effect']);
    await server.close();
  });
});
