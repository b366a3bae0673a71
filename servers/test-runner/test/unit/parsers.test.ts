import { describe, expect, it } from 'vitest';
import { parseCargoOutput } from '../../src/frameworks/cargo.js';
import { parseGoTestJson } from '../../src/frameworks/go.js';
import { buildRecord } from '../../src/runs/execute.js';
import type { ParsedRun } from '../../src/frameworks/types.js';

// Go is not installed on the machines that run this suite, so the go adapter is checked on output
// written by hand from the documented `go test -json` (test2json) event format.
const goPass = [
  { Action: 'start', Package: 'example.com/calc' },
  { Action: 'run', Package: 'example.com/calc', Test: 'TestAdd' },
  { Action: 'output', Package: 'example.com/calc', Test: 'TestAdd', Output: '=== RUN   TestAdd\n' },
  { Action: 'output', Package: 'example.com/calc', Test: 'TestAdd', Output: '--- PASS: TestAdd (0.00s)\n' },
  { Action: 'pass', Package: 'example.com/calc', Test: 'TestAdd', Elapsed: 0.001 },
  { Action: 'run', Package: 'example.com/calc', Test: 'TestAddWrong' },
  { Action: 'output', Package: 'example.com/calc', Test: 'TestAddWrong', Output: '=== RUN   TestAddWrong\n' },
  {
    Action: 'output',
    Package: 'example.com/calc',
    Test: 'TestAddWrong',
    Output: '    calc_test.go:14: add(2, 2) = 4, want 5\n',
  },
  {
    Action: 'output',
    Package: 'example.com/calc',
    Test: 'TestAddWrong',
    Output: '--- FAIL: TestAddWrong (0.00s)\n',
  },
  { Action: 'fail', Package: 'example.com/calc', Test: 'TestAddWrong', Elapsed: 0 },
  { Action: 'run', Package: 'example.com/calc', Test: 'TestLater' },
  {
    Action: 'output',
    Package: 'example.com/calc',
    Test: 'TestLater',
    Output: '    calc_test.go:20: not yet\n',
  },
  { Action: 'skip', Package: 'example.com/calc', Test: 'TestLater', Elapsed: 0 },
  { Action: 'output', Package: 'example.com/calc', Output: 'FAIL\n' },
  { Action: 'output', Package: 'example.com/calc', Output: 'FAIL\texample.com/calc\t0.002s\n' },
  { Action: 'fail', Package: 'example.com/calc', Elapsed: 0.002 },
];

const goBuildFailure = [
  {
    ImportPath: 'example.com/calc/broken [example.com/calc/broken.test]',
    Action: 'build-output',
    Output: '# example.com/calc/broken [example.com/calc/broken.test]\n',
  },
  {
    ImportPath: 'example.com/calc/broken [example.com/calc/broken.test]',
    Action: 'build-output',
    Output: './broken_test.go:5:2: undefined: missing\n',
  },
  { ImportPath: 'example.com/calc/broken [example.com/calc/broken.test]', Action: 'build-fail' },
  { Action: 'start', Package: 'example.com/calc/broken' },
  {
    Action: 'output',
    Package: 'example.com/calc/broken',
    Output: 'FAIL\texample.com/calc/broken [build failed]\n',
  },
  {
    Action: 'fail',
    Package: 'example.com/calc/broken',
    Elapsed: 0,
    FailedBuild: 'example.com/calc/broken [example.com/calc/broken.test]',
  },
];

const lines = (events: object[]) => events.map((e) => JSON.stringify(e)).join('\n');

describe('go test -json', () => {
  it('reads passes, skips and a failure with its file, line and got/want', () => {
    expect(parseGoTestJson(lines(goPass), '', '/p', 'example.com/calc')).toEqual({
      reportFound: true,
      noTestsFound: false,
      loadErrors: [],
      tests: [
        { name: 'TestAdd', status: 'passed', durationMs: 1 },
        {
          name: 'TestAddWrong',
          status: 'failed',
          durationMs: 0,
          file: '/p/calc_test.go',
          failure: {
            message: 'add(2, 2) = 4, want 5',
            stack:
              '=== RUN   TestAddWrong\n    calc_test.go:14: add(2, 2) = 4, want 5\n--- FAIL: TestAddWrong (0.00s)',
            actual: '4',
            expected: '5',
            file: '/p/calc_test.go',
            line: 14,
          },
        },
        { name: 'TestLater', status: 'skipped', durationMs: 0 },
      ],
    });
  });

  it('turns a package that does not build into a load error', () => {
    const parsed = parseGoTestJson(lines(goBuildFailure), '', '/p', 'example.com/calc');
    expect(parsed).toEqual({
      reportFound: true,
      noTestsFound: false,
      tests: [],
      loadErrors: [
        {
          message:
            'example.com/calc/broken: # example.com/calc/broken [example.com/calc/broken.test]\n./broken_test.go:5:2: undefined: missing',
        },
      ],
    });
  });

  it('says no tests when packages report none', () => {
    const events = [
      { Action: 'start', Package: 'example.com/calc' },
      { Action: 'output', Package: 'example.com/calc', Output: '?   \texample.com/calc\t[no test files]\n' },
      { Action: 'skip', Package: 'example.com/calc', Elapsed: 0 },
    ];
    expect(parseGoTestJson(lines(events), '', '/p', 'example.com/calc')).toEqual({
      reportFound: true,
      noTestsFound: true,
      tests: [],
      loadErrors: [],
    });
  });
});

describe('cargo libtest output', () => {
  it('reads a failed assert_eq with its panic location and left/right', () => {
    const stdout = [
      '',
      'running 3 tests',
      'test tests::adds ... ok',
      'test tests::later ... ignored',
      'test tests::wrong ... FAILED',
      '',
      'failures:',
      '',
      '---- tests::wrong stdout ----',
      '',
      "thread 'tests::wrong' (123) panicked at src/lib.rs:16:9:",
      'assertion `left == right` failed',
      '  left: 4',
      ' right: 5',
      'note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace',
      '',
      '',
      'failures:',
      '    tests::wrong',
      '',
      'test result: FAILED. 1 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s',
      '',
    ].join('\n');
    expect(parseCargoOutput(stdout, '', 101, '/c')).toEqual({
      reportFound: true,
      loadErrors: [],
      tests: [
        { name: 'tests::adds', status: 'passed' },
        { name: 'tests::later', status: 'skipped' },
        {
          name: 'tests::wrong',
          status: 'failed',
          file: '/c/src/lib.rs',
          failure: {
            message: 'assertion `left == right` failed\n  left: 4\n right: 5',
            stack:
              "thread 'tests::wrong' (123) panicked at src/lib.rs:16:9:\nassertion `left == right` failed\n  left: 4\n right: 5\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
            actual: '4',
            expected: '5',
            file: '/c/src/lib.rs',
            line: 16,
          },
        },
      ],
    });
  });
});

describe('outcome rules', () => {
  const base = {
    project: { id: '.:x', framework: 'vitest' as const, dir: '/p', displayDir: '.', detectedBy: 'x' },
    display: (f: string) => f,
    timeoutMs: 1000,
    signal: null,
  };
  const passing: ParsedRun = { reportFound: true, loadErrors: [], tests: [{ name: 'a', status: 'passed' }] };

  it.each([
    ['a clean run', { ...base, parsed: passing, timedOut: false, exitCode: 0 }, 'passed'],
    [
      'a runner that exits non-zero although every test passed',
      { ...base, parsed: passing, timedOut: false, exitCode: 1 },
      'error',
    ],
    [
      'a runner that wrote no report',
      { ...base, parsed: { reportFound: false, tests: [], loadErrors: [] }, timedOut: false, exitCode: 0 },
      'error',
    ],
    [
      'a suite that failed to load next to passing tests',
      { ...base, parsed: { ...passing, loadErrors: [{ message: 'boom' }] }, timedOut: false, exitCode: 1 },
      'error',
    ],
    ['a timeout', { ...base, parsed: passing, timedOut: true, exitCode: null }, 'timeout'],
    [
      'zero tests',
      { ...base, parsed: { reportFound: true, tests: [], loadErrors: [] }, timedOut: false, exitCode: 0 },
      'no_tests',
    ],
    [
      'only skipped tests',
      {
        ...base,
        parsed: { reportFound: true, tests: [{ name: 's', status: 'skipped' as const }], loadErrors: [] },
        timedOut: false,
        exitCode: 0,
      },
      'no_tests',
    ],
  ])('%s is %s', (_what, input, outcome) => {
    expect(buildRecord(input).outcome).toBe(outcome);
  });

  it('reports what stderr said when a run that never wrote its report timed out', () => {
    const hung = {
      ...base,
      parsed: { reportFound: false, tests: [], loadErrors: [] },
      timedOut: true,
      exitCode: null,
      output: 'progress\n',
      stderr: "Error: Cannot find module './missing.js'\n    at load (x.js:1:1)\n",
    };
    expect(buildRecord(hung)).toMatchObject({
      outcome: 'timeout',
      errors: [{ message: "Error: Cannot find module './missing.js'\n    at load (x.js:1:1)" }],
    });
    expect(buildRecord({ ...hung, stderr: '' }).errors).toEqual([]);
  });
});
