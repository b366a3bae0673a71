import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { createHarness, readTools, writeTools } from './helpers.js';
import { keel, reapAfter, startKeel, until } from './processes.js';
import { serve, submitEmptyChange } from './scripted.js';

describe('keel kill during a model call', () => {
  it('the run stops gracefully: exit 1 with its summary, recorded killed, never a SIGKILL of keel itself', async () => {
    const server = await serve(() => ({ delayMs: 4000, ...submitEmptyChange }));
    const agent = { model: 'gpt', tools: { filesystem: writeTools } };
    const h = await createHarness({
      config: {
        models: { gpt: { provider: 'openai-compatible', model: 'test-model', baseURL: server.url } },
        prices: { 'test-model': { inputPerMTok: 0, outputPerMTok: 0 } },
        agents: {
          planning: { model: 'gpt', tools: { filesystem: readTools } },
          coding: agent,
          review: agent,
        },
      },
    });
    reapAfter(h.dir);
    const file = path.join(h.dir, 'slow.task.yaml');
    await writeFile(
      file,
      stringify({
        type: 'slow',
        title: 'slow model',
        description: 'd',
        mode: 'single',
        deploy: null,
        tests: null,
      }),
    );
    const run = startKeel(['run', file, '--quiet'], h.dir);
    await until('the model call to be in flight', () =>
      server.requests.some((r) => r.outcome === 'pending') ? true : undefined,
    );
    const [task] = await h.store.listTasks();
    const killed = await keel(['kill', task!.id, '--as', 'ops'], h.dir);
    expect(killed.code).toBe(0);
    expect(await run.exited).toEqual({ code: 1, signal: null });
    expect(run.stdout()).toMatch(/status {4}killed\n/);
    expect((await h.store.getTask(task!.id))?.status).toBe('killed');
    expect(server.requests.map((r) => r.outcome)).toEqual(['disconnected']);
    // The kill fenced the run before its cancelled call could be recorded: the killer writes the end.
    expect(await h.store.listModelCalls(task!.id)).toEqual([]);
  });
});
