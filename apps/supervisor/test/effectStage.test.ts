import { mkdir, readFile, realpath, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ROOT_CONTEXT } from '@opentelemetry/api';
import { describe, expect, it, onTestFinished } from 'vitest';
import { tempDir } from '@keel/testing';
import { expectPreviewMeta, sizeEffect, type EffectContext } from '../src/engine/stages/effect.js';
import { done } from '../src/engine/stop.js';
import { SideEffectLedger } from '../src/limits/sideEffects.js';
import { connectServer, type ConnectedServer } from '../src/mcp/servers.js';

/** A real filesystem server rooted at `root` (relative to `dir`), and the effect stage over `workspace`. */
async function world(options: { root: string; protectedPaths?: string[] }) {
  const dir = await tempDir('keel-effect-');
  const ws = path.join(dir, 'ws');
  await mkdir(ws);
  const server = await connectServer(
    'filesystem',
    { builtin: 'filesystem', args: ['--root', options.root], env: {} },
    { workspace: ws, stateDir: path.join(dir, 'state'), env: {} },
  );
  onTestFinished(() => server.close());
  const events: Array<{ type: string; data: unknown }> = [];
  const ctx: EffectContext = {
    workspaceReal: await realpath(ws),
    ledger: new SideEffectLedger({ protectedPaths: options.protectedPaths ?? [] }),
    bounds: { signal: new AbortController().signal, msLeft: () => 60_000 },
    escalate: async (stop) => ({ ok: false, stop }),
    event: async (type, data) => {
      events.push({ type, data });
    },
  };
  const size = (s: ConnectedServer, name: string, args: Record<string, unknown>) =>
    sizeEffect(
      ctx,
      s,
      s.tools.find((t) => t.name === name)!,
      args,
      ROOT_CONTEXT,
    );
  return { dir, ws, server, ctx, events, size };
}

describe('the effect stage sizes a call on the server’s own preview', () => {
  it('a call whose preview was an error is sent bound to that: once its plan would hold (the state moved), it is refused, unchanged', async () => {
    const w = await world({ root: '.' });
    // edit_file of a file that does not exist: its plan refuses it, so the preview is that error.
    const args = { path: 'gone.txt', edits: [{ oldText: 'a', newText: 'b' }] };
    const sized = await w.size(w.server, 'edit_file', args);
    expect(sized).toEqual(done({ computable: true, files: [], refused: true }));
    if (!sized.ok) throw new Error('unreachable');
    expect(expectPreviewMeta(sized.value)).toEqual({ 'keel/expect-preview': 'refused' });
    // The file appears between the preview and the call: an edit nobody sized.
    await writeFile(path.join(w.ws, 'gone.txt'), 'a\n');
    const refused = await w.server.call('edit_file', args, {
      signal: new AbortController().signal,
      timeoutMs: 60_000,
      meta: { 'keel/idempotency-key': 'k-unsized', ...expectPreviewMeta(sized.value) },
    });
    expect({ isError: refused.isError, code: refused.error?.code }).toEqual({
      isError: true,
      code: 'PRECONDITION_FAILED',
    });
    expect(await readFile(path.join(w.ws, 'gone.txt'), 'utf8')).toBe('a\n');
  });

  it('a real call carries the binding: a file changed between preview and apply is refused, unchanged', async () => {
    const w = await world({ root: '.' });
    await writeFile(path.join(w.ws, 'a.txt'), 'one\n');
    const args = { path: 'a.txt', content: 'two\n' };
    const sized = await w.size(w.server, 'write_file', args);
    expect(sized).toEqual(
      done({
        computable: true,
        files: [{ path: 'a.txt', linesAdded: 1, linesRemoved: 1 }],
        preview: expect.objectContaining({ binding: expect.stringMatching(/^[0-9a-f]{64}$/) }),
      }),
    );
    if (!sized.ok) throw new Error('unreachable');
    // Someone else writes the file after the preview.
    await writeFile(path.join(w.ws, 'a.txt'), 'three\n');
    const refused = await w.server.call('write_file', args, {
      signal: new AbortController().signal,
      timeoutMs: 60_000,
      meta: { 'keel/idempotency-key': 'k-refused', ...expectPreviewMeta(sized.value) },
    });
    expect({ isError: refused.isError, code: refused.error?.code }).toEqual({
      isError: true,
      code: 'PRECONDITION_FAILED',
    });
    expect(await readFile(path.join(w.ws, 'a.txt'), 'utf8')).toBe('three\n');
    // Previewed again, the same call goes through.
    const again = await w.size(w.server, 'write_file', args);
    if (!again.ok) throw new Error('unreachable');
    const applied = await w.server.call('write_file', args, {
      signal: new AbortController().signal,
      timeoutMs: 60_000,
      meta: { 'keel/idempotency-key': 'k-applied', ...expectPreviewMeta(again.value) },
    });
    expect(applied.isError).toBe(false);
    expect(await readFile(path.join(w.ws, 'a.txt'), 'utf8')).toBe('two\n');
  });

  it('a path the server reaches outside the workspace is an effect it cannot size, so it crosses the caps', async () => {
    const w = await world({ root: '..', protectedPaths: ['.github/**'] });
    const sized = await w.size(w.server, 'write_file', { path: 'outside.txt', content: 'x\n' });
    const outside = path.join(await realpath(w.dir), 'outside.txt');
    expect(sized).toEqual({
      ok: false,
      stop: {
        status: 'limit',
        limit: 'protected_path',
        message: `the effect of write_file cannot be computed before it runs ('${outside}' is not inside the workspace), so it counts as crossing the protected path cap`,
      },
    });
    expect(w.events.map((e) => e.type)).toEqual(['side_effect_cap']);
  });

  it('a rename counts both its paths: moving a protected file out is a change to it', async () => {
    const w = await world({ root: '.', protectedPaths: ['.github/**'] });
    await mkdir(path.join(w.ws, '.github'));
    await writeFile(path.join(w.ws, '.github', 'ci.yml'), 'on: push\n');
    const sized = await w.size(w.server, 'move', { source: '.github/ci.yml', destination: 'ci.yml' });
    expect(sized).toEqual({
      ok: false,
      stop: {
        status: 'limit',
        limit: 'protected_path',
        message: 'move would change .github/ci.yml, a protected path',
      },
    });
  });
});
