/**
 * The one vitest config every package runs: tests under `test/`, generous limits for tests that
 * spawn real processes (a limit is a hang guard, never a timing assertion). A package passes only
 * what differs. A plain object, so this file resolves nothing from the repository root (vitest is
 * installed per package).
 */
export function keelTestConfig(overrides: { testTimeout?: number; hookTimeout?: number } = {}) {
  return {
    test: {
      include: ['test/**/*.test.ts'],
      testTimeout: overrides.testTimeout ?? 60_000,
      hookTimeout: overrides.hookTimeout ?? 60_000,
    },
  };
}
