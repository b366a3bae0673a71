import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { tempDir, toolErrorOf } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { copyFixture, startServer } from './helpers.js';

// The tape fixture is minimist 1.2.8 as published (its own tape suite; its test script is
// `npm run tests-only` → `nyc tape 'test/**/*.js'`); the npm-test fixture is a small project whose
// tests use uvu, a runner this server does not know, so it runs as `npm test`.

const failingTape = `var test = require('tape');
var parse = require('../');

test('parses a number on purpose wrongly', function (t) {
  t.equal(parse(['-n', '5']).n, 6, 'n is six');
  t.end();
});

test('not ready yet', { skip: true }, function (t) {
  t.end();
});
`;

const summary = (run: Record<string, unknown>) => ({
  outcome: run['outcome'],
  totals: run['totals'],
  failures: (run['failures'] as Array<Record<string, unknown>>).map((f) => ({
    name: f['name'],
    file: f['file'],
    line: f['line'],
    message: f['message'],
    expected: f['expected'],
    actual: f['actual'],
  })),
  errors: run['errors'],
});

describe('tape (minimist)', () => {
  it('is detected through npm run and nyc, and its suite runs green', async () => {
    const dir = await copyFixture('tape');
    const server = await startServer(dir, 'v2');
    const detected = await server.ok('detect_projects');
    expect(
      (detected['projects'] as Array<Record<string, unknown>>).map((p) => ({
        id: p['id'],
        framework: p['framework'],
        version: p['version'],
        detectedBy: p['detectedBy'],
        command: (p['command'] as string[]).slice(2),
      })),
    ).toEqual([
      {
        id: '.:tape',
        framework: 'tape',
        version: '5.10.2',
        detectedBy: 'package.json',
        command: ['test/**/*.js'],
      },
    ]);
    const run = await server.ok('run_tests');
    expect({ outcome: run['outcome'], totals: run['totals'], errors: run['errors'] }).toEqual({
      outcome: 'passed',
      // minimist's 61 tape tests, each a group of assertions.
      totals: { total: 61, passed: 61, failed: 0, skipped: 0 },
      errors: [],
    });
  });

  it('reports a failing assertion with where, expected and actual, and re-runs its file', async () => {
    const dir = await copyFixture('tape');
    await writeFile(path.join(dir, 'test', 'zz_wrong.js'), failingTape);
    const server = await startServer(dir, 'v1');
    const run = await server.ok('run_tests', { files: ['test/zz_wrong.js', 'test/num.js'] });
    expect(summary(run)).toEqual({
      outcome: 'failed',
      totals: { total: 4, passed: 2, failed: 1, skipped: 1 },
      failures: [
        {
          name: 'parses a number on purpose wrongly',
          file: 'test/zz_wrong.js',
          line: 5,
          message: 'n is six',
          expected: '6',
          actual: '5',
        },
      ],
      errors: [],
    });
    const rerun = await server.ok('rerun_failed', { runId: run['runId'] });
    expect({ outcome: rerun['outcome'], totals: rerun['totals'] }).toEqual({
      outcome: 'failed',
      totals: { total: 2, passed: 0, failed: 1, skipped: 1 },
    });
  });

  it('says a crash mid-run is an error, and that tape cannot filter by name', async () => {
    const dir = await copyFixture('tape');
    await writeFile(
      path.join(dir, 'test', 'zz_crash.js'),
      "require('tape')('throws', function () { throw new Error('boom in a test'); });\n",
    );
    const server = await startServer(dir, 'v2');
    const run = await server.ok('run_tests', { files: ['test/num.js', 'test/zz_crash.js'] });
    expect({
      outcome: run['outcome'],
      reason: run['reason'],
      firstLine: (run['errors'] as Array<{ message: string }>)[0]?.message.split('\n')[0],
      mentionsBoom: (run['errors'] as Array<{ message: string }>)[0]?.message.includes(
        'Error: boom in a test',
      ),
    }).toEqual({
      outcome: 'error',
      reason: '1 suite(s) failed to load or compile',
      firstLine: 'the TAP output ended without a plan: the run stopped after 10 test point(s)',
      mentionsBoom: true,
    });
    const refused = await server.call('run_tests', { testNamePattern: 'num' });
    expect(toolErrorOf(refused)).toEqual({
      code: 'INVALID_ARGUMENT',
      message: "tape cannot select tests by name (project '.:tape')",
      hint: 'Pass files instead: tape runs whole files.',
      retryable: false,
    });
  });
});

describe('a test command as a project', () => {
  it('finds `npm test` when no known framework is there, and decides by the exit code', async () => {
    const dir = await copyFixture('npm-test');
    const server = await startServer(dir, 'v2');
    const detected = await server.ok('detect_projects');
    expect(
      (detected['projects'] as Array<Record<string, unknown>>).map((p) => ({
        id: p['id'],
        framework: p['framework'],
        detectedBy: p['detectedBy'],
        command: p['command'],
      })),
    ).toEqual([
      {
        id: '.:npm-test',
        framework: 'command',
        detectedBy: 'package.json scripts.test',
        command: ['npm', 'test'],
      },
    ]);
    const green = await server.ok('run_tests');
    expect({ outcome: green['outcome'], totals: green['totals'], sandbox: green['sandbox'] }).toEqual({
      outcome: 'passed',
      totals: { total: 1, passed: 1, failed: 0, skipped: 0 },
      sandbox: { kind: 'bwrap' },
    });

    await writeFile(
      path.join(dir, 'slugify.js'),
      "exports.slugify = (text) => text.toLowerCase().replace(/[^a-z0-9]+/g, '_');\n",
    );
    const red = await server.ok('run_tests');
    const failure = (red['failures'] as Array<{ name: string; message: string }>)[0]!;
    expect({
      outcome: red['outcome'],
      totals: red['totals'],
      name: failure.name,
      firstLine: failure.message.split('\n')[0],
      saysWhy: failure.message.includes('Expected values to be strictly equal'),
    }).toEqual({
      outcome: 'failed',
      totals: { total: 1, passed: 0, failed: 1, skipped: 0 },
      name: 'npm test',
      firstLine: 'exited with code 1',
      saysWhy: true,
    });
    const narrowed = await server.call('run_tests', { files: ['tests/slugify.js'] });
    expect(toolErrorOf(narrowed)).toEqual({
      code: 'INVALID_ARGUMENT',
      message: "project '.:npm-test' runs the command npm test as a whole; it cannot select files or tests",
      hint: 'Call run_tests with only the project.',
      retryable: false,
    });
  });

  it('a `no test specified` script and a monorepo root are not projects', async () => {
    const root = await tempDir('keel-tr-none-');
    await mkdir(path.join(root, 'pkg'));
    await writeFile(path.join(root, 'package.json'), JSON.stringify({ scripts: { test: 'pnpm -r test' } }));
    await writeFile(
      path.join(root, 'pkg', 'package.json'),
      JSON.stringify({ scripts: { test: 'echo "Error: no test specified" && exit 1' } }),
    );
    const server = await startServer(root, 'v2');
    expect((await server.ok('detect_projects'))['projects']).toEqual([]);
  });

  it('runs declared commands and parses their TAP and JUnit XML', async () => {
    const root = await tempDir('keel-tr-cmd-');
    const tapeDir = path.join(root, 'minimist');
    const mochaDir = path.join(root, 'mocha');
    await mkdir(tapeDir);
    await mkdir(mochaDir);
    await copyFixture('tape', tapeDir);
    await copyFixture('mocha', mochaDir);
    await writeFile(path.join(tapeDir, 'test', 'zz_wrong.js'), failingTape);
    const config = path.join(await tempDir(), 'projects.json');
    await writeFile(
      config,
      JSON.stringify({
        projects: [
          { name: 'wrong', dir: 'minimist', command: ['node', 'test/zz_wrong.js'], format: 'tap' },
          {
            name: 'xunit',
            dir: 'mocha',
            command: [
              'node',
              'node_modules/mocha/bin/mocha.js',
              '--no-config',
              '--reporter=xunit',
              '--reporter-option=output=reports/junit.xml',
              'test/math.spec.js',
            ],
            format: 'junit',
            report: 'reports/junit.xml',
          },
        ],
      }),
    );
    const server = await startServer(root, 'v2', ['--config', config]);
    const ids = (await server.ok('detect_projects'))['projects'] as Array<{ id: string }>;
    expect(ids.map((p) => p.id)).toEqual(['minimist:tape', 'minimist:wrong', 'mocha:mocha', 'mocha:xunit']);

    const tap = await server.ok('run_tests', { project: 'minimist:wrong' });
    expect(summary(tap)).toEqual({
      outcome: 'failed',
      totals: { total: 2, passed: 0, failed: 1, skipped: 1 },
      failures: [
        {
          name: 'parses a number on purpose wrongly',
          file: 'minimist/test/zz_wrong.js',
          line: 5,
          message: 'n is six',
          expected: '6',
          actual: '5',
        },
      ],
      errors: [],
    });

    const junit = await server.ok('run_tests', { project: 'mocha:xunit' });
    expect({
      outcome: junit['outcome'],
      totals: junit['totals'],

      failures: (junit['failures'] as Array<{ name: string; message: string }>).map((f) => [
        f.name,
        f.message,
      ]),
    }).toEqual({
      outcome: 'failed',
      totals: { total: 2, passed: 1, failed: 1, skipped: 0 },
      failures: [['add > adds wrongly on purpose', 'Expected values to be strictly equal:']],
    });
  });

  it('never reads a JUnit report an earlier run left behind', async () => {
    const root = await tempDir('keel-tr-stale-');
    await mkdir(path.join(root, 'reports'));
    const stale = path.join(root, 'reports', 'junit.xml');
    await writeFile(
      stale,
      '<testsuite><testcase classname="old" name="failed long ago"><failure>stale</failure></testcase></testsuite>',
    );
    const config = path.join(await tempDir(), 'projects.json');
    await writeFile(
      config,
      JSON.stringify({
        projects: [
          // Writes no report at all: what there is to read must be nothing.
          {
            name: 'quiet',
            command: ['node', '-e', 'process.exit(0)'],
            format: 'junit',
            report: 'reports/junit.xml',
          },
        ],
      }),
    );
    const server = await startServer(root, 'v2', ['--config', config]);
    const run = await server.ok('run_tests', { project: '.:quiet' });
    expect({ outcome: run['outcome'], reason: run['reason'], totals: run['totals'] }).toEqual({
      outcome: 'error',
      reason: 'the runner exited with code 0 without reporting results',
      totals: { total: 0, passed: 0, failed: 0, skipped: 0 },
    });
    await expect(readFile(stale, 'utf8')).rejects.toThrow(/ENOENT/);
  });

  it('--command runs a command of the person’s choosing as the project .:command', async () => {
    const dir = await copyFixture('tape');
    const server = await startServer(dir, 'v1', ['--command', 'node test/num.js']);
    const run = await server.ok('run_tests', { project: '.:command' });
    expect({ outcome: run['outcome'], totals: run['totals'], command: run['command'] }).toEqual({
      outcome: 'passed',
      totals: { total: 2, passed: 2, failed: 0, skipped: 0 },
      command: ['node', 'test/num.js'],
    });
  });
});
