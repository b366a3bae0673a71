import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stateStoreConformance, type StateStoreOpener } from '../src/conformance/index.js';
import { createSqliteStateStore } from '../src/state/stateStore.js';
import { openStateDatabase, type StateDatabase } from '../src/stateDir.js';

let dir: string;
let state: StateDatabase;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'keel-state-'));
  state = openStateDatabase(dir);
});
afterEach(async () => {
  state.close();
  await rm(dir, { recursive: true, force: true });
});

stateStoreConformance(
  { describe, it, expect },
  {
    async open() {
      const dir = await mkdtemp(path.join(tmpdir(), 'keel-state-conformance-'));
      const opened: StateDatabase[] = [openStateDatabase(dir)];
      const opener =
        (db: StateDatabase['db']): StateStoreOpener =>
        (namespace, options) =>
          createSqliteStateStore(db, namespace, options);
      return {
        subject: opener(opened[0]!.db),
        async another() {
          const second = openStateDatabase(dir);
          opened.push(second);
          return opener(second.db);
        },
        async close() {
          for (const state of opened) state.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  },
);

describe('sqlite state store', () => {
  it('lets exactly one of several processes take a free key', async () => {
    // Each child uses the built kit, the code a server process runs.
    const kit = new URL('../dist/index.js', import.meta.url).href;
    const script = `const { openStateDatabase, createSqliteStateStore } = await import(${JSON.stringify(kit)});
      const state = openStateDatabase(process.argv[1]);
      const store = createSqliteStateStore(state.db, 'race');
      const taken = await store.put('lock', process.argv[2], { ifVersion: 0 });
      process.stdout.write(taken.ok ? 'won' : 'lost');
      state.close();`;
    const runs = Array.from({ length: 4 }, (_, index) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script, dir, `p${index}`], {
        cwd: path.dirname(fileURLToPath(import.meta.url)),
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
      return new Promise<string>((resolve) => child.on('close', () => resolve(out.trim())));
    });
    const answers = await Promise.all(runs);
    expect(answers.filter((answer) => answer === 'won')).toHaveLength(1);
    expect(answers.filter((answer) => answer === 'lost')).toHaveLength(3);
    const reader = createSqliteStateStore(state.db, 'race');
    const winner = await reader.get<string>('lock');
    expect(answers[Number(winner?.value.slice(1))]).toBe('won');
  });
});
