import { createHash } from 'node:crypto';
import { readFile, realpath, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  callFingerprint,
  createPathJail,
  createSqliteIdempotencyStore,
  openStateDatabase,
  type IdempotencyStore,
} from '@keel/kit';
import { tempDir } from '@keel/testing';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createFilesystemServer } from '../src/index.js';

/**
 * A server whose store holds a claim for `key` by a process that died mid-call: the claim's lease has
 * run out, so the next call with the key is recovered through the tool's reconcile.
 */
async function afterCrash(tool: string, input: Record<string, unknown>, key: string) {
  const root = await realpath(await tempDir('keel-fs-reconcile-'));
  const state = openStateDatabase(await tempDir('keel-fs-state-'));
  onTestFinished(() => state.close());
  const store: IdempotencyStore = createSqliteIdempotencyStore(state.db);
  const server = createFilesystemServer({ jail: await createPathJail([root]), store });
  onTestFinished(() => server.close());
  const dead = await store.claim({
    scope: 'keel-filesystem',
    key,
    fingerprint: callFingerprint('keel-filesystem', tool, input),
    owner: 'dead-process',
    leaseMs: 1,
    ttlMs: 60_000,
    now: Date.now() - 1_000,
  });
  expect(dead.kind).toBe('claimed');
  return { root, server };
}

const editInput = (edits: Array<{ oldText: string; newText: string }>) => ({
  path: 'a.txt',
  edits: edits.map((edit) => ({ ...edit, replaceAll: false })),
  dryRun: false,
  maxDiffBytes: 32_768,
});

describe('edit_file reconciles an interrupted call', () => {
  it('returns the edit that landed before the crash instead of failing "oldText does not occur"', async () => {
    const input = editInput([{ oldText: 'two', newText: 'TWO' }]);
    const { root, server } = await afterCrash('edit_file', input, 'k1');
    // The crashed call wrote the file and died before recording its result.
    await writeFile(path.join(root, 'a.txt'), 'one\nTWO\nthree\n');
    const result = await server.callTool('edit_file', { ...input, idempotencyKey: 'k1' });
    expect(result.isError).toBeUndefined();
    expect(result.structuredContent).toMatchObject({ path: 'a.txt', replacements: 1, dryRun: false });
    expect(await readFile(path.join(root, 'a.txt'), 'utf8')).toBe('one\nTWO\nthree\n');
  });

  it('runs the edit when the crash came before the write', async () => {
    const input = editInput([{ oldText: 'two', newText: 'TWO' }]);
    const { root, server } = await afterCrash('edit_file', input, 'k2');
    await writeFile(path.join(root, 'a.txt'), 'one\ntwo\nthree\n');
    const result = await server.callTool('edit_file', { ...input, idempotencyKey: 'k2' });
    expect(result.structuredContent).toMatchObject({ replacements: 1 });
    expect(await readFile(path.join(root, 'a.txt'), 'utf8')).toBe('one\nTWO\nthree\n');
  });

  it('an insertion (new text holding the old) is never applied twice: refused without its pre-image hash, told apart with it', async () => {
    const input = editInput([{ oldText: 'END', newText: 'r13\nEND' }]);
    // Killed after the write: the file holds the insertion, and still accepts it.
    const landed = await afterCrash('edit_file', input, 'k4');
    await writeFile(path.join(landed.root, 'a.txt'), 'one\nr13\nEND\n');
    const again = await landed.server.callTool('edit_file', { ...input, idempotencyKey: 'k4' });
    expect(again._meta?.['keel/error']).toMatchObject({ code: 'CONFLICT' });
    expect(await readFile(path.join(landed.root, 'a.txt'), 'utf8')).toBe('one\nr13\nEND\n');
    // With expectedSha256 the file tells: its pre-image runs the edit once.
    const before = 'one\nEND\n';
    const sha = createHash('sha256').update(before).digest('hex');
    const keyed = { ...input, expectedSha256: sha };
    const early = await afterCrash('edit_file', keyed, 'k5');
    await writeFile(path.join(early.root, 'a.txt'), before);
    const ran = await early.server.callTool('edit_file', { ...keyed, idempotencyKey: 'k5' });
    expect(ran.structuredContent).toMatchObject({ replacements: 1, previousSha256: sha });
    expect(await readFile(path.join(early.root, 'a.txt'), 'utf8')).toBe('one\nr13\nEND\n');
    // …and its post-image is the edit that landed: the one undo that hashes to it proves it.
    const late = await afterCrash('edit_file', keyed, 'k6');
    await writeFile(path.join(late.root, 'a.txt'), 'one\nr13\nEND\n');
    const landedOnce = await late.server.callTool('edit_file', { ...keyed, idempotencyKey: 'k6' });
    expect(landedOnce.isError).toBeUndefined();
    expect(landedOnce.structuredContent).toMatchObject({ replacements: 1, previousSha256: sha });
    expect(await readFile(path.join(late.root, 'a.txt'), 'utf8')).toBe('one\nr13\nEND\n');
    // A file changed otherwise since is refused by the hash check, not edited.
    const other = await afterCrash('edit_file', keyed, 'k7');
    await writeFile(path.join(other.root, 'a.txt'), 'zero\none\nr13\nEND\n');
    const refused = await other.server.callTool('edit_file', { ...keyed, idempotencyKey: 'k7' });
    expect(refused._meta?.['keel/error']).toMatchObject({ code: 'PRECONDITION_FAILED' });
    expect(await readFile(path.join(other.root, 'a.txt'), 'utf8')).toBe('zero\none\nr13\nEND\n');
  });

  it('refuses to guess when the file shows neither state', async () => {
    const input = editInput([{ oldText: 'two', newText: 'TWO' }]);
    const { root, server } = await afterCrash('edit_file', input, 'k3');
    await writeFile(path.join(root, 'a.txt'), 'something else\n');
    const result = await server.callTool('edit_file', { ...input, idempotencyKey: 'k3' });
    expect(result._meta?.['keel/error']).toMatchObject({ code: 'CONFLICT' });
  });
});

describe('apply_patch reconciles an interrupted call', () => {
  const patch = ['--- a/a.txt', '+++ b/a.txt', '@@ -1,3 +1,3 @@', ' one', '-two', '+TWO', ' three', ''].join(
    '\n',
  );
  const input = { patch, dryRun: false, fuzzFactor: 0 };

  it.each([
    ['after the write: the landed patch is the result', 'one\nTWO\nthree\n', 'applied'],
    ['before the write: the patch is applied now', 'one\ntwo\nthree\n', 'ran'],
  ])('%s', async (_what, content, expected) => {
    const { root, server } = await afterCrash('apply_patch', input, `p-${expected}`);
    await writeFile(path.join(root, 'a.txt'), content);
    const result = await server.callTool('apply_patch', { ...input, idempotencyKey: `p-${expected}` });
    expect(result.structuredContent).toMatchObject({
      files: [{ path: 'a.txt', action: 'modify', hunks: 1 }],
      dryRun: false,
    });
    expect(await readFile(path.join(root, 'a.txt'), 'utf8')).toBe('one\nTWO\nthree\n');
  });

  it('reports the files it cannot confirm', async () => {
    const { root, server } = await afterCrash('apply_patch', input, 'p-x');
    await writeFile(path.join(root, 'a.txt'), 'unrelated\n');
    const result = await server.callTool('apply_patch', { ...input, idempotencyKey: 'p-x' });
    expect(result._meta?.['keel/error']).toMatchObject({
      code: 'CONFLICT',
      details: { files: [{ path: 'a.txt', state: 'unknown' }] },
    });
  });
});
