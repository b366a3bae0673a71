import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { runTask } from '../src/engine/runTask.js';
import { builtinServers, createHarness, rawServerScript, task } from './helpers.js';

// A server with two mutating tools that can preview: `stamp` declares it changes no file, `paint`
// does not. Every tools/call it gets is logged (tool, and whether it was a preview or bound to one).
const tool = (name: string, meta: Record<string, boolean>) => ({
  name,
  inputSchema: { type: 'object' },
  annotations: { readOnlyHint: false },
  _meta: meta,
});
const marks = rawServerScript({
  name: 'marks',
  tools: [
    tool('stamp', { 'keel/preview': true, 'keel/changes-no-files': true }),
    tool('paint', { 'keel/preview': true }),
  ],
  preamble: "import { appendFileSync } from 'node:fs';",
  onCall: `(request) => {
    const meta = request.params._meta ?? {};
    const preview = meta['keel/preview'] === true;
    const kind = preview ? 'preview' : 'real, bound to ' + (meta['keel/expect-preview'] ?? 'nothing');
    appendFileSync(process.env.MARKS_LOG, request.params.name + ': ' + kind + '\\n');
    return preview
      ? {
          content: [{ type: 'text', text: 'would change no file' }],
          structuredContent: { preview: { complete: true, files: [], binding: 'b'.repeat(64) } },
        }
      : { content: [{ type: 'text', text: request.params.name + 'ed' }] };
  }`,
});

describe('a tool whose server declares it changes no file', () => {
  it('is sent once, with no preview; a tool without the declaration is previewed and bound to it', async () => {
    const log = path.join(await tempDir('keel-marks-'), 'calls.log');
    const h = await createHarness({
      files: { 'README.md': '# ws\n', 'marks.mjs': marks },
      config: {
        servers: {
          ...builtinServers,
          marks: { command: process.execPath, args: ['marks.mjs'], env: { MARKS_LOG: log } },
        },
        agents: {
          planning: { model: 'playbook', tools: { filesystem: ['read_file'] } },
          coding: { model: 'playbook', tools: { marks: ['stamp', 'paint'] } },
          review: { model: 'playbook', tools: { filesystem: ['read_file'] } },
        },
      },
    });
    const run = await runTask({
      loaded: h.loaded,
      store: h.store,
      env: process.env,
      task: task({
        mode: 'single',
        tests: null,
        deploy: null,
        playbook: {
          coding: [
            [
              { call: 'stamp', args: {} },
              { call: 'paint', args: {} },
              { submit: { version: 'change.v1', summary: 'marks', files: [], commit: null } },
            ],
          ],
        },
      }),
    });
    expect(run.run.status).toBe('succeeded');
    expect((await readFile(log, 'utf8')).split('\n')).toEqual([
      'stamp: real, bound to nothing',
      'paint: preview',
      `paint: real, bound to ${'b'.repeat(64)}`,
      '',
    ]);
    expect((await h.store.listToolCalls(run.run.id)).map((c) => [c.tool, c.outcome])).toEqual([
      ['stamp', 'ok'],
      ['paint', 'ok'],
    ]);
  });
});
