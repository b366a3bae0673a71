import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as z from 'zod';
import { createAuditLog } from '../src/audit/auditLog.js';
import { callFingerprint } from '../src/canonical.js';
import { defineTool } from '../src/defineTool.js';
import { ok } from '../src/errors.js';
import { ownerEnvName, ownerIsGone, processOwner, processStartTime } from '../src/idempotency/owner.js';
import { createSqliteIdempotencyStore } from '../src/idempotency/sqliteStore.js';
import { createPathJail } from '../src/jail.js';
import { createServer } from '../src/server.js';
import { openStateDatabase, type StateDatabase } from '../src/stateDir.js';

/** The owner string a process that has already exited would have written. */
async function deadOwner(): Promise<string> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await once(child, 'exit');
  return processOwner().replace(/^\d+:/, `${child.pid}:`);
}

describe('claim owners', () => {
  it('names this process first, then where its pid means something', () => {
    expect(processOwner()).toMatch(new RegExp(`^${process.pid}:[0-9a-f]{8}@${hostname()}/\\d+$`));
  });

  it('is gone only when it is a process of this host and pid namespace that no longer exists', async () => {
    expect(ownerIsGone(processOwner())).toBe(false);
    const dead = await deadOwner();
    expect(ownerIsGone(dead)).toBe(true);
    expect(ownerIsGone(dead.replace(`@${hostname()}/`, '@another-host/'))).toBe(false);
    expect(ownerIsGone(dead.replace(/\/\d+$/, '/4026531999'))).toBe(false);
    // Owners written before hosts were recorded, or by other tools, are left to their lease.
    expect(ownerIsGone(dead.replace(/@.*$/, ''))).toBe(false);
    expect(ownerIsGone('not an owner')).toBe(false);
  });

  it('tells a live process that took a dead owner’s pid from the owner, by its start time', async () => {
    const here = processStartTime();
    expect(here).toMatch(/^[0-9a-f-]{36}:\d+$/);
    expect(processStartTime(process.pid)).toBe(here);
    const owner = processOwner();
    expect(ownerIsGone(owner, { startTime: here! })).toBe(false);
    // This pid is alive but started at another time than the owner recorded: the owner is gone.
    const [boot, ticks] = here!.split(':');
    expect(ownerIsGone(owner, { startTime: `${boot}:${Number(ticks) - 1}` })).toBe(true);
    const dead = await deadOwner();
    expect(processStartTime(Number(dead.split(':')[0]))).toBeUndefined();
  });

  it('is not gone while a process it started still runs (a tool child outliving a SIGKILLed server)', async () => {
    const dead = await deadOwner();
    const leftover = spawn(
      process.execPath,
      ['-e', 'process.stdout.write("ready"); setTimeout(() => {}, 60_000)'],
      {
        env: { ...process.env, [ownerEnvName]: dead },
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    try {
      // Running its own program (exec done), so /proc shows its environment.
      await once(leftover.stdout, 'data');
      expect(ownerIsGone(dead)).toBe(false);
    } finally {
      leftover.kill('SIGKILL');
      await once(leftover, 'exit');
    }
    expect(ownerIsGone(dead)).toBe(true);
  });
});

describe('a keyed call whose claim is held by a crashed process', () => {
  let dir: string;
  let state: StateDatabase;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'keel-owner-'));
    state = openStateDatabase(dir);
  });
  afterEach(async () => {
    state.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('is recovered at once, not after the lease, and runs the tool’s recovery', async () => {
    const store = createSqliteIdempotencyStore(state.db);
    const runs: string[] = [];
    const tool = defineTool({
      name: 'bump',
      title: 'Bump',
      description: 'Counts.',
      input: z.object({ by: z.number() }),
      output: z.object({ how: z.string() }),
      effect: 'write',
      handler: async () => {
        runs.push('handler');
        return ok({ how: 'ran' });
      },
      reconcile: async () => {
        runs.push('reconcile');
        return { status: 'done' as const, value: { how: 'reconciled' } };
      },
    });
    const server = createServer({
      name: 's',
      version: '1',
      tools: [tool],
      jail: await createPathJail([dir]),
      store,
      audit: createAuditLog(state.db),
      // A lease far longer than the test: only the owner's absence can free the key.
      idempotency: { leaseMs: 600_000, waitMs: 600_000 },
    });
    const held = await store.claim({
      scope: 's',
      key: 'k',
      fingerprint: callFingerprint('s', 'bump', { by: 1 }),
      owner: await deadOwner(),
      leaseMs: 600_000,
      ttlMs: 600_000,
    });
    expect(held.kind).toBe('claimed');
    const result = await server.callTool('bump', { by: 1, idempotencyKey: 'k' });
    expect([result.structuredContent, runs]).toEqual([{ how: 'reconciled' }, ['reconcile']]);
    expect(await store.get('s', 'k')).toMatchObject({ state: 'completed', attempts: 2 });
    await server.close();
  });
});
