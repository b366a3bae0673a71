import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * The one vitest config every package runs: tests under `test/`, generous limits for tests that
 * spawn real processes (a limit is a hang guard, never a timing assertion). A package passes only
 * what differs. A plain object, so this file resolves nothing from the repository root (vitest is
 * installed per package).
 *
 * Tests never write to the home directory: a keel config without `stateDir` keeps its state under
 * `$XDG_STATE_HOME`, so every test process gets a fresh one of its own in the temp dir.
 */
export function keelTestConfig(overrides: { testTimeout?: number; hookTimeout?: number } = {}) {
  return {
    test: {
      include: ['test/**/*.test.ts'],
      testTimeout: overrides.testTimeout ?? 60_000,
      hookTimeout: overrides.hookTimeout ?? 60_000,
      env: { XDG_STATE_HOME: mkdtempSync(path.join(tmpdir(), 'keel-test-state-')) },
    },
  };
}
