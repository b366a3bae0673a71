import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, realpath, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as z from 'zod';
import { createAuditLog } from '../src/audit/auditLog.js';
import { canonicalJson } from '../src/canonical.js';
import { defineTool } from '../src/defineTool.js';
import { fail, ok, type ToolError } from '../src/errors.js';
import { createPathJail, type PathJail } from '../src/jail.js';
import { effectPreviewSchema, previewBinding, type EffectPreview } from '../src/preview.js';
import { createServer, ERROR_META_KEY } from '../src/server.js';

let dir: string;
let jail: PathJail;
beforeEach(async () => {
  dir = await realpath(await mkdtemp(path.join(tmpdir(), 'keel-preview-')));
  jail = await createPathJail([dir]);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const sha = (text: string) => createHash('sha256').update(text).digest('hex');
const errorOf = (result: { _meta?: Record<string, unknown> | undefined }) =>
  result._meta?.[ERROR_META_KEY] as ToolError | undefined;
const previewOf = (result: { structuredContent?: unknown }) =>
  (result.structuredContent as { preview: EffectPreview }).preview;
const asPreview = { meta: { 'keel/preview': true } };

/**
 * A tool declared as a plan: `put` writes a file, `remove` deletes a tree. Its apply counts its runs,
 * so a test sees whether anything was applied.
 */
function fileTools(applied: { runs: number }) {
  const put = defineTool({
    name: 'put',
    title: 'Put',
    description: 'Writes a file.',
    input: z.object({ path: z.string().describe('File.'), content: z.string().describe('Content.') }),
    output: z.object({ path: z.string(), created: z.boolean() }),
    effect: 'write',
    paths: { path: 'any' },
    plan: async (input, ctx) => {
      const target = ctx.paths.path;
      if (input.content.includes('\0'))
        return fail('INVALID_ARGUMENT', 'no NUL bytes', { hint: 'Text only.' });
      const before = target.exists ? await readFile(target.real, 'utf8') : '';
      return ok({
        effect: () => ({
          files: [
            {
              path: target.real,
              change: target.exists ? ('modify' as const) : ('create' as const),
              linesAdded: input.content.split('\n').length - 1,
              linesRemoved: before.split('\n').length - 1,
            },
          ],
        }),
        apply: async () => {
          applied.runs++;
          await writeFile(target.real, input.content);
          return ok({ path: input.path, created: !target.exists });
        },
      });
    },
  });
  const remove = defineTool({
    name: 'remove',
    title: 'Remove',
    description: 'Deletes a directory tree.',
    input: z.object({ path: z.string().describe('Directory.') }),
    output: z.object({ removed: z.boolean() }),
    effect: 'destructive',
    paths: { path: 'existing' },
    plan: async (_input, ctx) =>
      ok({
        effect: () => ({ files: [{ path: ctx.paths.path.real, change: 'delete' as const, tree: true }] }),
        apply: async () => {
          applied.runs++;
          await rm(ctx.paths.path.real, { recursive: true });
          return ok({ removed: true });
        },
      }),
  });
  const legacy = defineTool({
    name: 'legacy',
    title: 'Legacy',
    description: 'A handler without a plan.',
    input: z.object({}),
    output: z.object({}),
    effect: 'write',
    handler: async () => ok({}),
  });
  const look = defineTool({
    name: 'look',
    title: 'Look',
    description: 'Reads.',
    input: z.object({}),
    output: z.object({}),
    effect: 'read',
    handler: async () => ok({}),
  });
  return [put, remove, legacy, look];
}

describe('a tool declared as a plan', () => {
  it('is marked in tools/list, and its output schema admits both its result and a preview', async () => {
    const server = createServer({ name: 's', version: '1', tools: fileTools({ runs: 0 }), jail });
    const listed = server.listTools();
    expect(listed.map((tool) => [tool.name, tool._meta])).toEqual([
      ['put', { 'keel/preview': true }],
      ['remove', { 'keel/preview': true }],
      ['legacy', undefined],
      ['look', undefined],
    ]);
    const schema = listed[0]!.outputSchema as { type: string; anyOf: Array<{ required: string[] }> };
    expect([schema.type, schema.anyOf.map((shape) => shape.required)]).toEqual([
      'object',
      [['path', 'created'], ['preview']],
    ]);
    const plain = listed[2]!.outputSchema as Record<string, unknown>;
    expect([plain['type'], 'anyOf' in plain]).toEqual(['object', false]);
  });

  it('previews what it would change, from the jail’s real paths, and changes nothing', async () => {
    await mkdir(path.join(dir, 'real'));
    await writeFile(path.join(dir, 'real', 'a.txt'), 'one\ntwo\n');
    await symlink('real', path.join(dir, 'link'));
    const applied = { runs: 0 };
    const db = new Database(':memory:');
    const audit = createAuditLog(db);
    const server = createServer({ name: 's', version: '1', tools: fileTools(applied), jail, audit });
    const result = await server.callTool(
      'put',
      { path: 'link/a.txt', content: 'one\n' },
      { meta: { 'keel/preview': true, 'keel/idempotency-key': 'k1' } },
    );
    const file = path.join(dir, 'real', 'a.txt');
    const expected: EffectPreview = {
      complete: true,
      files: [
        { path: file, change: 'modify', linesAdded: 1, linesRemoved: 2, sha256Before: sha('one\ntwo\n') },
      ],
      binding: createHash('sha256')
        .update(canonicalJson({ files: [[file, sha('one\ntwo\n'), null, null]], basis: [] }))
        .digest('hex'),
    };
    expect(result.structuredContent).toEqual({ preview: expected });
    expect(effectPreviewSchema.parse(expected)).toEqual(expected);
    expect(previewBinding(expected)).toBe(expected.binding);
    expect(result.content).toEqual([
      {
        type: 'text',
        text: `put would change 1 file(s):\n  modify real/a.txt (+1 -2)\nbinding ${expected.binding}`,
      },
    ]);
    expect([applied.runs, await readFile(file, 'utf8'), await audit.list()]).toEqual([0, 'one\ntwo\n', []]);
    // No claim was made: the same key then runs the real call.
    const real = await server.callTool(
      'put',
      { path: 'link/a.txt', content: 'one\n' },
      { meta: { 'keel/idempotency-key': 'k1' } },
    );
    expect([real.structuredContent, applied.runs, (await audit.list()).length]).toEqual([
      { path: 'link/a.txt', created: false },
      1,
      1,
    ]);
  });

  it("a failing plan's preview is the error the call would give", async () => {
    const applied = { runs: 0 };
    const server = createServer({ name: 's', version: '1', tools: fileTools(applied), jail });
    const result = await server.callTool('put', { path: 'x.txt', content: 'a\0b' }, asPreview);
    expect([errorOf(result), applied.runs]).toEqual([
      { code: 'INVALID_ARGUMENT', message: 'no NUL bytes', hint: 'Text only.', retryable: false },
      0,
    ]);
  });

  it('lists the files of a tree it removes, up to the cap, then says it is incomplete', async () => {
    await mkdir(path.join(dir, 'tree', 'sub', 'empty'), { recursive: true });
    await writeFile(path.join(dir, 'tree', 'a.txt'), 'a\nb\nc');
    await writeFile(path.join(dir, 'tree', 'sub', 'b.bin'), Buffer.from([1, 0, 2]));
    await symlink('/etc/passwd', path.join(dir, 'tree', 'sub', 'c-link'));
    const server = createServer({ name: 's', version: '1', tools: fileTools({ runs: 0 }), jail });
    const whole = previewOf(await server.callTool('remove', { path: 'tree' }, asPreview));
    expect(
      whole.files.map((file) => [
        path.relative(dir, file.path),
        file.linesRemoved,
        file.binary,
        file.directory,
      ]),
    ).toEqual([
      ['tree/a.txt', 3, undefined, undefined],
      ['tree/sub/b.bin', 0, true, undefined],
      ['tree/sub/c-link', 0, undefined, undefined],
      ['tree/sub/empty', 0, undefined, true],
    ]);
    expect([whole.complete, whole.files[2]!.sha256Before]).toEqual([true, sha('/etc/passwd')]);

    const capped = createServer({
      name: 's',
      version: '1',
      tools: fileTools({ runs: 0 }),
      jail,
      limits: { previewMaxFiles: 2 },
    });
    const cut = previewOf(await capped.callTool('remove', { path: 'tree' }, asPreview));
    expect([cut.complete, cut.reason, cut.files.length]).toEqual([
      false,
      'more than 2 files would change; the preview lists the first 2',
      2,
    ]);
  });
});

describe('a call bound to a preview', () => {
  it('runs when nothing changed since the preview', async () => {
    await writeFile(path.join(dir, 'a.txt'), 'old\n');
    const applied = { runs: 0 };
    const server = createServer({ name: 's', version: '1', tools: fileTools(applied), jail });
    const { binding } = previewOf(
      await server.callTool('put', { path: 'a.txt', content: 'new\n' }, asPreview),
    );
    const real = await server.callTool(
      'put',
      { path: 'a.txt', content: 'new\n' },
      { meta: { 'keel/expect-preview': binding } },
    );
    expect([real.structuredContent, await readFile(path.join(dir, 'a.txt'), 'utf8')]).toEqual([
      { path: 'a.txt', created: false },
      'new\n',
    ]);
  });

  it('is refused, changing nothing, when the file changed between preview and apply; the key stays free', async () => {
    await writeFile(path.join(dir, 'a.txt'), 'old\n');
    const applied = { runs: 0 };
    const server = createServer({ name: 's', version: '1', tools: fileTools(applied), jail });
    const first = previewOf(await server.callTool('put', { path: 'a.txt', content: 'new\n' }, asPreview));
    await writeFile(path.join(dir, 'a.txt'), 'changed by someone else\n');
    const meta = { 'keel/expect-preview': first.binding, 'keel/idempotency-key': 'k' };
    const refused = await server.callTool('put', { path: 'a.txt', content: 'new\n' }, { meta });
    const again = previewOf(await server.callTool('put', { path: 'a.txt', content: 'new\n' }, asPreview));
    expect(errorOf(refused)).toEqual({
      code: 'PRECONDITION_FAILED',
      message:
        'put would now act on a different state than the preview this call is bound to: a file it changes was changed, created or removed since',
      hint: 'Preview again (_meta["keel/preview"]: true), check the new effect, and send the call with the new binding; nothing was changed.',
      retryable: false,
      details: { expected: first.binding, binding: again.binding, files: [path.join(dir, 'a.txt')] },
    });
    expect([applied.runs, await readFile(path.join(dir, 'a.txt'), 'utf8')]).toEqual([
      0,
      'changed by someone else\n',
    ]);
    const retried = await server.callTool(
      'put',
      { path: 'a.txt', content: 'new\n' },
      { meta: { ...meta, 'keel/expect-preview': again.binding } },
    );
    expect([retried.structuredContent, applied.runs]).toEqual([{ path: 'a.txt', created: false }, 1]);
  });

  it('is refused when a file it would create appeared meanwhile', async () => {
    const applied = { runs: 0 };
    const server = createServer({ name: 's', version: '1', tools: fileTools(applied), jail });
    const { binding } = previewOf(await server.callTool('put', { path: 'n.txt', content: 'n\n' }, asPreview));
    await writeFile(path.join(dir, 'n.txt'), 'planted\n');
    const refused = await server.callTool(
      'put',
      { path: 'n.txt', content: 'n\n' },
      { meta: { 'keel/expect-preview': binding } },
    );
    expect([errorOf(refused)?.code, applied.runs]).toEqual(['PRECONDITION_FAILED', 0]);
    await unlink(path.join(dir, 'n.txt'));
    const real = await server.callTool(
      'put',
      { path: 'n.txt', content: 'n\n' },
      { meta: { 'keel/expect-preview': binding } },
    );
    expect([real.structuredContent, existsSync(path.join(dir, 'n.txt'))]).toEqual([
      { path: 'n.txt', created: true },
      true,
    ]);
  });
});

describe('a call whose preview was an error', () => {
  it('answers the same error while the state is as previewed, and is refused, changing nothing, once its plan would hold', async () => {
    const applied = { runs: 0 };
    const server = createServer({ name: 's', version: '1', tools: fileTools(applied), jail });
    const previewed = await server.callTool('remove', { path: 'd' }, asPreview);
    expect(errorOf(previewed)?.code).toBe('NOT_FOUND');
    const meta = { 'keel/expect-preview': 'refused', 'keel/idempotency-key': 'r' };
    // As previewed: the call gives the preview's error.
    const same = await server.callTool('remove', { path: 'd' }, { meta });
    expect([errorOf(same)?.code, applied.runs]).toEqual(['NOT_FOUND', 0]);
    // The directory appears between the preview and the call: its removal was never sized.
    await mkdir(path.join(dir, 'd'));
    await writeFile(path.join(dir, 'd', 'keep.txt'), 'keep\n');
    const refused = await server.callTool(
      'remove',
      { path: 'd' },
      { meta: { ...meta, 'keel/idempotency-key': 's' } },
    );
    expect(errorOf(refused)).toEqual({
      code: 'PRECONDITION_FAILED',
      message:
        'remove would now change what its preview said it could not: the state it acts on changed since',
      hint: 'Preview again (_meta["keel/preview"]: true), check the effect, and send the call with its binding; nothing was changed.',
      retryable: false,
    });
    expect([applied.runs, await readFile(path.join(dir, 'd', 'keep.txt'), 'utf8')]).toEqual([0, 'keep\n']);
  });
});

describe('preview requests the kit refuses', () => {
  it.each([
    [
      'a tool without a plan',
      'legacy',
      { 'keel/preview': true },
      'legacy cannot preview its effect',
      'Only tools marked _meta["keel/preview"]: true in tools/list can preview; call this one without the preview keys, and count its effect as unknown.',
    ],
    [
      'a read-only tool',
      'look',
      { 'keel/preview': true },
      'look cannot preview its effect',
      'look only reads (readOnlyHint): it changes nothing, so there is nothing to preview.',
    ],
    [
      'a binding for a tool without a plan',
      'legacy',
      { 'keel/expect-preview': 'a'.repeat(64) },
      'legacy cannot preview its effect',
      'Only tools marked _meta["keel/preview"]: true in tools/list can preview; call this one without the preview keys, and count its effect as unknown.',
    ],
    [
      'a preview flag that is not a boolean',
      'put',
      { 'keel/preview': 'yes' },
      '_meta["keel/preview"] must be true or false',
      'Send _meta["keel/preview"]: true to get only the effect the call would have.',
    ],
    [
      'a binding that is not one',
      'put',
      { 'keel/expect-preview': 'latest' },
      `_meta["keel/expect-preview"] must be a preview's binding`,
      'Send the 64-hex-digit `binding` a preview of this call returned, or "refused" when its preview was an error.',
    ],
    [
      'a preview that carries a binding',
      'put',
      { 'keel/preview': true, 'keel/expect-preview': 'a'.repeat(64) },
      'a preview request cannot also carry _meta["keel/expect-preview"]',
      'Preview first, then send the real call with the binding the preview returned.',
    ],
  ])('%s', async (_name, tool, meta, message, hint) => {
    const applied = { runs: 0 };
    const audit = createAuditLog(new Database(':memory:'));
    const server = createServer({ name: 's', version: '1', tools: fileTools(applied), jail, audit });
    const args = tool === 'put' ? { path: 'x.txt', content: 'x' } : {};
    const result = await server.callTool(tool, args, { meta });
    expect([errorOf(result), applied.runs, existsSync(path.join(dir, 'x.txt'))]).toEqual([
      { code: 'INVALID_ARGUMENT', message, hint, retryable: false },
      0,
      false,
    ]);
    // A refused preview request leaves no audit row; a malformed real call does, like any refusal.
    expect((await audit.list()).map((row) => row.errorCode)).toEqual(
      (meta as Record<string, unknown>)['keel/preview'] === true || tool === 'look'
        ? []
        : ['INVALID_ARGUMENT'],
    );
  });

  it('a tool must declare exactly one of handler and plan, and a read tool no plan', () => {
    const base = {
      name: 't',
      title: 'T',
      description: 'd',
      input: z.object({}),
      output: z.object({}),
    };
    const plan = async () => ok({ effect: () => ({ files: [] }), apply: async () => ok({}) });
    expect(() => defineTool({ ...base, effect: 'write', handler: async () => ok({}), plan })).toThrow(
      "tool 't' must declare exactly one of handler and plan",
    );
    expect(() => defineTool({ ...base, effect: 'write' })).toThrow(
      "tool 't' must declare exactly one of handler and plan",
    );
    expect(() => defineTool({ ...base, effect: 'read', plan })).toThrow(
      "tool 't' only reads; a plan is for tools that change something",
    );
    expect(() =>
      defineTool({ ...base, effect: 'write', changesNoFiles: true, handler: async () => ok({}) }),
    ).toThrow(
      "tool 't' declares changesNoFiles without a plan; the kit checks the declaration against the plan's effect",
    );
  });
});

/**
 * `stamp` declares that it changes no file; its plan's effect is what the test says, so a broken
 * declaration (a file, an incomplete effect, an irreversible one) can be tried. Its apply counts runs.
 */
function stampTool(effect: () => Record<string, unknown>, applied: { runs: number }) {
  return defineTool({
    name: 'stamp',
    title: 'Stamp',
    description: 'Records a mark outside the files.',
    input: z.object({}),
    output: z.object({ stamped: z.boolean() }),
    effect: 'write',
    changesNoFiles: true,
    plan: async () =>
      ok({
        effect: effect as () => { files: [] },
        apply: async () => {
          applied.runs++;
          return ok({ stamped: true });
        },
      }),
  });
}

describe('a tool that declares it changes no file', () => {
  it('says so in tools/list, and its real call runs with no preview', async () => {
    const applied = { runs: 0 };
    const server = createServer({
      name: 's',
      version: '1',
      tools: [stampTool(() => ({ files: [] }), applied)],
      jail,
    });
    expect(server.listTools().map((tool) => tool._meta)).toEqual([
      { 'keel/preview': true, 'keel/changes-no-files': true },
    ]);
    const real = await server.callTool('stamp', {}, { meta: { 'keel/idempotency-key': 'k1' } });
    expect([real.structuredContent, applied.runs]).toEqual([{ stamped: true }, 1]);
  });

  it.each([
    [{ files: [{ path: 'a.txt', change: 'create' }] }, 'would change 1 file(s)'],
    [
      { files: [], complete: false, reason: 'a hook may run' },
      'cannot list its whole effect (a hook may run)',
    ],
    [{ files: [], irreversible: 'publishes a tag' }, 'is irreversible (publishes a tag)'],
  ])('refuses a real call whose plan breaks it, having applied nothing (%j)', async (effect, broken) => {
    const applied = { runs: 0 };
    const server = createServer({
      name: 's',
      version: '1',
      tools: [stampTool(() => effect, applied)],
      jail,
    });
    const meta = { 'keel/idempotency-key': 'k2' };
    const refused = await server.callTool('stamp', {}, { meta });
    expect(errorOf(refused)).toEqual({
      code: 'INTERNAL',
      message: `stamp declares that it changes no file, yet its plan ${broken}`,
      hint: "The server's tool is at fault, not the call: report it; nothing was changed.",
      retryable: false,
    });
    expect(applied.runs).toBe(0);
  });
});
