import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseTap, tapResults } from '../../src/frameworks/tap.js';

const streams = fileURLToPath(new URL('../fixtures/tap-streams/', import.meta.url));
const projectDir = '/srv/app';
const results = (text: string, exitCode = 1) =>
  tapResults(parseTap(text), { projectDir, exitCode, stderr: '' });

// node-tap-16.tap and node-tap-21.tap are what tap 16.3.10 and 21.8.0 printed with --reporter=tap for
// the same two files (paths and times normalised): a file of nested subtests with a failing assertion,
// a skipped and a todo subtest, and a file with a top-level assertion.
describe.each(['node-tap-16.tap', 'node-tap-21.tap'])('node-tap output (%s)', (file) => {
  it('names tests by their subtest path and places the failure', async () => {
    const parsed = results(await readFile(path.join(streams, file), 'utf8'));
    expect(parsed.loadErrors).toEqual([]);
    expect(parsed.tests.map((t) => [t.name, t.status])).toEqual([
      ['test/a.js > math works', 'failed'],
      ['test/a.js > outer > inner', 'passed'],
      ['test/a.js > skipped', 'skipped'],
      ['test/a.js > todo', 'skipped'],
      ['test/b.js', 'passed'],
    ]);
    expect(parsed.tests[0]).toMatchObject({
      file: path.join(projectDir, 'test/a.js'),
      line: 4,
      failure: {
        message: 'adds wrongly\n--- expected\n+++ actual\n@@ -1,1 +1,1 @@\n-3\n+2',
        file: path.join(projectDir, 'test/a.js'),
        line: 4,
      },
    });
  });
});

describe('node --test output (--test-reporter=tap)', () => {
  it("a failure's message is the thrown error's, after the test's name", () => {
    const text = [
      'TAP version 13',
      '# Subtest: console',
      'not ok 1 - console',
      '  ---',
      '  duration_ms: 1.471796',
      "  location: '/srv/app/test/a.test.mjs:3:1'",
      "  failureType: 'testCodeFailure'",
      "  error: 'UNREACHABLE ECONNREFUSED'",
      "  code: 'ERR_ASSERTION'",
      "  name: 'AssertionError'",
      "  operator: 'fail'",
      '  stack: |-',
      '    TestContext.<anonymous> (file:///srv/app/test/a.test.mjs:4:10)',
      '  ...',
      '1..1',
      '# tests 1',
      '# fail 1',
    ].join('\n');
    const parsed = results(text);
    expect(parsed.tests.map((t) => [t.name, t.status, t.failure?.message])).toEqual([
      ['console', 'failed', 'console: UNREACHABLE ECONNREFUSED'],
    ]);
  });
});

describe('parseTap', () => {
  it('reads TAP 14 subtests, directives, escaped hashes and YAML values', () => {
    const text = [
      'TAP version 14',
      '1..3',
      '# Subtest: parser',
      '    ok 1 - reads \\# literally',
      '    not ok 2 - compares',
      '      ---',
      '      expected: [1, 2]',
      '      found: [1, 3]',
      '      at: { file: lib/x.js, line: 12 }',
      '      ...',
      '    1..2',
      'not ok 1 - parser',
      'ok 2 - later # skip no database here',
      'not ok 3 - wishful # TODO one day',
    ].join('\n');
    const tap = parseTap(text);
    expect(tap.points[0]!.subtest!.points[0]!.description).toBe('reads # literally');
    expect(results(text)).toEqual({
      reportFound: true,
      loadErrors: [],
      tests: [
        {
          name: 'parser',
          status: 'failed',
          file: path.join(projectDir, 'lib/x.js'),
          line: 12,
          failure: {
            message: 'compares',
            expected: '[1,2]',
            actual: '[1,3]',
            file: path.join(projectDir, 'lib/x.js'),
            line: 12,
          },
        },
        { name: 'later', status: 'skipped' },
        { name: 'wishful', status: 'skipped' },
      ],
    });
  });

  it('groups tape assertions under their test comment, counts tape’s skipped tests, ignores console lines', () => {
    const text = [
      'TAP version 13',
      '# adds',
      'ok 1 should be equal',
      'console output that is not TAP',
      'ok 2 should be equal',
      '# adds',
      'not ok 3 should be strictly equal',
      '  ---',
      '    operator: equal',
      '    expected: 3',
      '    actual:   2',
      '    at: Test.<anonymous> (/srv/app/test/add.js:7:5)',
      '  ...',
      '# SKIP not yet',
      '',
      '1..3',
      '# tests 3',
      '# pass  2',
      '# fail  1',
    ].join('\n');
    expect(results(text)).toEqual({
      reportFound: true,
      loadErrors: [],
      tests: [
        { name: 'adds', status: 'passed' },
        {
          name: 'adds',
          status: 'failed',
          file: '/srv/app/test/add.js',
          line: 7,
          failure: {
            message: 'should be strictly equal',
            expected: '3',
            actual: '2',
            file: '/srv/app/test/add.js',
            line: 7,
          },
        },
        { name: 'not yet', status: 'skipped' },
      ],
    });
  });

  it('turns Bail out!, a short plan and a missing plan into errors, and 1..0 into no tests', () => {
    expect(results('TAP version 13\nok 1 a\nBail out! database down\n').loadErrors).toEqual([
      { message: 'Bail out! database down' },
    ]);
    expect(results('1..3\nok 1 a\n', 0).loadErrors).toEqual([
      { message: 'the TAP plan announced 3 test point(s) but 1 ran' },
    ]);
    expect(results('ok 1 a\nok 2 b\n', 1).loadErrors).toEqual([
      { message: 'the TAP output ended without a plan: the run stopped after 2 test point(s)' },
    ]);
    expect(results('1..0 # SKIP no tests here\n', 0)).toEqual({
      reportFound: true,
      tests: [],
      loadErrors: [],
      noTestsFound: true,
    });
    expect(results('just words\n', 0)).toEqual({ reportFound: false, tests: [], loadErrors: [] });
  });
});
