import Database from 'better-sqlite3';
import { mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import * as z from 'zod';
import { createAuditLog } from '../src/audit/auditLog.js';
import { defineTool } from '../src/defineTool.js';
import { ok } from '../src/errors.js';
import { createPathJail, type PathJail } from '../src/jail.js';
import { createServer } from '../src/server.js';

let dir: string;
let jail: PathJail;
beforeEach(async () => {
  dir = await realpath(await mkdtemp(path.join(tmpdir(), 'keel-meta-')));
  jail = await createPathJail([dir]);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

it("a handler reads the request's _meta and names the approver in the audit row", async () => {
  const db = new Database(':memory:');
  const audit = createAuditLog(db);
  const approve = defineTool({
    name: 'ship',
    title: 'Ship',
    description: 'Ships when the request carries an approver.',
    input: z.object({ what: z.string().describe('What to ship.') }),
    output: z.object({ approver: z.string().nullable() }),
    effect: 'write',
    handler: async (_input, ctx) => {
      const approver = ctx.meta?.['example/approver'];
      if (typeof approver !== 'string') return ok({ approver: null });
      ctx.setAuditActor(approver);
      return ok({ approver });
    },
  });
  const server = createServer({ name: 's', version: '1', tools: [approve], jail, audit });
  const approved = await server.callTool('ship', { what: 'a' }, { meta: { 'example/approver': 'alice' } });
  const plain = await server.callTool('ship', { what: 'b' });
  expect([approved.structuredContent, plain.structuredContent]).toEqual([
    { approver: 'alice' },
    { approver: null },
  ]);
  expect((await audit.list()).map((row) => [row.args, row.actor])).toEqual([
    [{ what: 'a' }, 'alice'],
    [{ what: 'b' }, null],
  ]);
  db.close();
});
