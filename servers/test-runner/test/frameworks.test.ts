import { spawnSync } from 'node:child_process';
import { readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { copyFixture, settledProcessesIn, startServer } from './helpers.js';

// Each framework runs for real on a fixture project: a passing and a failing assertion, a suite that
// cannot import, an endless loop stopped by the timeout, and the same project with its tests removed.
interface Case {
  /** Why this framework cannot run here; its tests are then reported as skipped. */
  missing?: string;
  fixture: string;
  id: string;
  math: string;
  broken: string;
  hang: string;
  failure: Record<string, unknown>;
  brokenError: Record<string, unknown>;
  /** Makes the project test-free. */
  empty(dir: string): Promise<void>;
}

const removeMatching = async (dir: string, pattern: RegExp) => {
  for (const entry of await readdir(dir, { recursive: true })) {
    if (!String(entry).includes('node_modules') && pattern.test(String(entry)))
      await rm(path.join(dir, String(entry)), { recursive: true, force: true });
  }
};

const cases: Case[] = [
  {
    fixture: 'vitest',
    id: '.:vitest',
    math: 'math.test.js',
    broken: 'broken.test.js',
    hang: 'hang.test.js',
    failure: {
      name: 'add > adds wrongly on purpose',
      file: 'math.test.js',
      line: 9,
      message: 'expected 4 to be 5 // Object.is equality',
      expected: '5',
      actual: '4',
      stack: 'AssertionError: expected 4 to be 5 // Object.is equality\n    at math.test.js:9:23',
    },
    brokenError: {
      file: 'broken.test.js',
      message: "Cannot find module './does-not-exist.js' imported from {dir}/broken.test.js",
    },
    empty: (dir) => removeMatching(dir, /\.test\.js$/),
  },
  {
    fixture: 'jest',
    id: '.:jest',
    math: 'math.test.js',
    broken: 'broken.test.js',
    hang: 'hang.test.js',
    failure: {
      name: 'add adds wrongly on purpose',
      file: 'math.test.js',
      line: 8,
      message: 'expect(received).toBe(expected) // Object.is equality\n\nExpected: 5\nReceived: 4',
      expected: '5',
      actual: '4',
      stack:
        'Error: expect(received).toBe(expected) // Object.is equality\n\nExpected: 5\nReceived: 4\n    at Object.<anonymous> (math.test.js:8:23)',
    },
    brokenError: { file: 'broken.test.js' },
    empty: (dir) => removeMatching(dir, /\.test\.js$/),
  },
  {
    fixture: 'mocha',
    id: '.:mocha',
    math: 'test/math.spec.js',
    broken: 'test/broken.spec.js',
    hang: 'test/hang.spec.js',
    failure: {
      name: 'add adds wrongly on purpose',
      file: 'test/math.spec.js',
      line: 9,
      message: 'Expected values to be strictly equal:\n\n4 !== 5',
      expected: '5',
      actual: '4',
      stack:
        'AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:\n\n4 !== 5\n\n    at Context.<anonymous> (test/math.spec.js:9:12)',
    },
    brokenError: { file: 'test/broken.spec.js', message: "Error: Cannot find module '../does-not-exist.js'" },
    empty: (dir) => removeMatching(dir, /\.spec\.js$/),
  },
  {
    fixture: 'node-test',
    id: '.:node-test',
    math: 'test/math.test.js',
    broken: 'test/broken.test.js',
    hang: 'test/hang.test.js',
    failure: {
      name: 'add > adds wrongly on purpose',
      file: 'test/math.test.js',
      line: 10,
      message: 'Expected values to be strictly equal:\n\n4 !== 5',
      expected: '5',
      actual: '4',
      stack:
        'AssertionError [ERR_ASSERTION]: Expected values to be strictly equal:\n\n4 !== 5\n\n    at TestContext.<anonymous> (test/math.test.js:10:12)',
    },
    brokenError: { file: 'test/broken.test.js' },
    empty: (dir) => removeMatching(dir, /\.test\.js$/),
  },
  {
    fixture: 'pytest',
    id: '.:pytest',
    math: 'tests/test_math.py',
    broken: 'tests/test_broken.py',
    hang: 'tests/test_hang.py',
    failure: {
      name: 'tests/test_math.py::test_adds_wrongly_on_purpose',
      file: 'tests/test_math.py',
      line: 9,
      message: 'assert 4 == 5\n +  where 4 = add(2, 2)',
      expected: '5',
      actual: '4',
      stack:
        'def test_adds_wrongly_on_purpose():\n>       assert add(2, 2) == 5\nE       assert 4 == 5\nE        +  where 4 = add(2, 2)\n\ntests/test_math.py:9: AssertionError',
    },
    brokenError: { file: 'tests/test_broken.py' },
    empty: (dir) => removeMatching(dir, /^tests\/test_.*\.py$/),
  },
  {
    fixture: 'cargo',
    id: '.:cargo',
    math: 'src/lib.rs',
    broken: 'tests/broken.rs',
    hang: 'tests/hang.rs',
    failure: {
      name: 'tests::adds_wrongly_on_purpose',
      file: 'src/lib.rs',
      line: 16,
      message: 'assertion `left == right` failed\n  left: 4\n right: 5',
      expected: '5',
      actual: '4',
    },
    brokenError: { file: 'tests/broken.rs' },
    empty: async (dir) => {
      await rm(path.join(dir, 'tests'), { recursive: true });
      await writeFile(path.join(dir, 'src', 'lib.rs'), 'pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n');
    },
  },
];

// go runs only where it is installed (Debian's golang-go in CI); its parser is tested on recorded
// output in unit/parsers.test.ts either way.
const hasGo = spawnSync('go', ['version']).status === 0;
{
  cases.push({
    // Reported as skipped, with the reason in its name, rather than left out.
    ...(hasGo ? {} : { missing: 'go is not installed here (CI installs Debian golang-go)' }),
    fixture: 'go',
    id: '.:go',
    math: 'calc_test.go',
    broken: 'broken/broken_test.go',
    hang: 'hang/hang_test.go',
    failure: {
      name: 'TestAddsWronglyOnPurpose',
      file: 'calc_test.go',
      line: 13,
      message: 'Add(2, 2) = 4, want 5',
      expected: '5',
      actual: '4',
    },
    brokenError: {},
    empty: (dir) => removeMatching(dir, /_test\.go$/),
  });
}

describe.each(
  cases.map((c, i) => ({
    ...c,
    kind: i % 2 === 0 ? ('v2' as const) : ('v1' as const),
    skipNote: c.missing === undefined ? '' : ` — skipped: ${c.missing}`,
  })),
)('$fixture ($kind client)$skipNote', (c) => {
  it.skipIf(c.missing !== undefined)(
    'reports a failing assertion with file, line, expected and actual, then a load error, a timeout and no tests',
    async () => {
      const dir = await copyFixture(c.fixture);
      const server = await startServer(dir, c.kind);

      const failed = await server.ok('run_tests', { files: [c.math] });
      expect(failed).toMatchObject({
        cached: false,
        project: { id: c.id, dir: '.', framework: c.fixture },
        outcome: 'failed',
        totals: { total: 2, passed: 1, failed: 1, skipped: 0 },
        errors: [],
      });
      const { stack, ...failure } = (failed['failures'] as Array<Record<string, unknown>>)[0]!;
      const { stack: expectedStack, ...expectedFailure } = c.failure;
      expect(failure).toEqual(expectedFailure);
      // cargo's plain output carries no stack to compare.
      expect(expectedStack === undefined ? 'no stack expected' : stack).toBe(
        expectedStack ?? 'no stack expected',
      );
      expect((failed['failures'] as unknown[]).length).toBe(1);

      // Only the failed test runs again, selected by its exact name.
      const rerun = await server.ok('rerun_failed', { runId: failed['runId'] });
      const rerunTotals = rerun['totals'] as Record<string, number>;
      expect({
        outcome: rerun['outcome'],
        passed: rerunTotals['passed'],
        failed: rerunTotals['failed'],
        name: (rerun['failures'] as Array<{ name: string }>)[0]?.name,
      }).toEqual({
        outcome: 'failed',
        passed: 0,
        failed: 1,
        name: c.failure['name'],
      });

      const broken = await server.ok('run_tests', { files: [c.broken] });
      expect(broken['outcome']).toBe('error');
      const errors = broken['errors'] as Array<Record<string, unknown>>;
      expect(errors).toHaveLength(1);
      const brokenError = Object.fromEntries(
        Object.entries(c.brokenError).map(([k, v]) => [k, String(v).replace('{dir}', dir)]),
      );
      expect(errors[0]).toMatchObject(brokenError);

      const hang = await server.ok('run_tests', { files: [c.hang], timeoutMs: 3000 });
      expect({ outcome: hang['outcome'], reason: hang['reason'] }).toEqual({
        outcome: 'timeout',
        reason: 'the run did not finish within 3000 ms; its process group was killed',
      });
      // Workers and forks included: nothing of the run is left working in the project.
      expect(await settledProcessesIn(dir)).toEqual([]);

      await c.empty(dir);
      const empty = await server.ok('run_tests', {});
      expect({ outcome: empty['outcome'], totals: empty['totals'], reason: empty['reason'] }).toEqual({
        outcome: 'no_tests',
        totals: { total: 0, passed: 0, failed: 0, skipped: 0 },
        reason: 'no test was executed',
      });
    },
  );
});
