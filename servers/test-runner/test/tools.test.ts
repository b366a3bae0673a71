import { execFile } from 'node:child_process';
import { appendFile, mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { connectHttp, createGitRepo, startHttpServer, tempDir, toolErrorOf } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { binPath, copyFixture, startServer } from './helpers.js';

const execFileAsync = promisify(execFile);

describe.each(['v2', 'v1'] as const)('tools over stdio (%s client)', (kind) => {
  it('lists the six tools with annotations true to what they do', async () => {
    const server = await startServer(await tempDir(), kind);
    const { tools } = await server.client.listTools();
    expect(Object.fromEntries(tools.map((t) => [t.name, t.annotations]))).toEqual({
      detect_projects: {
        title: 'Detect test projects',
        readOnlyHint: true,
        destructiveHint: false,
        idempotentHint: true,
        openWorldHint: false,
      },
      list_tests: {
        title: 'List tests',
        readOnlyHint: true,
        destructiveHint: false,
        idempotentHint: true,
        openWorldHint: false,
      },
      run_tests: {
        title: 'Run tests',
        readOnlyHint: false,
        destructiveHint: false,
        idempotentHint: true,
        openWorldHint: false,
      },
      get_run: {
        title: 'Get a past run',
        readOnlyHint: true,
        destructiveHint: false,
        idempotentHint: true,
        openWorldHint: false,
      },
      rerun_failed: {
        title: 'Re-run failed tests',
        readOnlyHint: false,
        destructiveHint: false,
        idempotentHint: true,
        openWorldHint: false,
      },
      classify_flaky: {
        title: 'Classify failures as flaky',
        readOnlyHint: false,
        destructiveHint: false,
        idempotentHint: true,
        openWorldHint: false,
      },
    });
  });

  it('detects every project of a monorepo with framework, version and command', async () => {
    const root = await tempDir();
    await writeFile(path.join(root, 'package.json'), JSON.stringify({ name: 'mono', private: true }));
    for (const name of ['vitest', 'jest', 'mocha', 'node-test', 'pytest', 'cargo']) {
      await mkdir(path.join(root, 'packages', name), { recursive: true });
      await copyFixture(name, path.join(root, 'packages', name));
    }
    await mkdir(path.join(root, 'services', 'api'), { recursive: true });
    await writeFile(path.join(root, 'services', 'api', 'go.mod'), 'module example.com/api\n\ngo 1.22\n');
    const server = await startServer(root, kind);
    const out = await server.ok('detect_projects');
    const projects = out['projects'] as Array<Record<string, unknown>>;
    expect(
      projects.map((p) => [
        p['id'],
        p['framework'],
        p['detectedBy'],
        p['version'] === undefined ? 'no version' : 'version',
      ]),
    ).toEqual([
      ['packages/cargo:cargo', 'cargo', 'Cargo.toml', 'version'],
      ['packages/jest:jest', 'jest', 'package.json', 'version'],
      ['packages/mocha:mocha', 'mocha', '.mocharc.json', 'version'],
      ['packages/node-test:node-test', 'node-test', 'package.json', 'version'],
      ['packages/pytest:pytest', 'pytest', 'pytest.ini', 'version'],
      ['packages/vitest:vitest', 'vitest', 'package.json', 'version'],
      // go is not installed on every machine: the project is still detected.
      ['services/api:go', 'go', 'go.mod', expect.any(String)],
    ]);
    expect(out['total']).toBe(7);
    expect(projects.find((p) => p['id'] === 'packages/pytest:pytest')!['command']).toEqual([
      'python3',
      '-m',
      'pytest',
      '-p',
      'no:cacheprovider',
      '--junitxml=<scratch>/pytest.xml',
      '-o',
      'junit_family=xunit1',
      '-q',
      '--color=no',
    ]);

    const ambiguous = await server.call('run_tests', {});
    expect(toolErrorOf(ambiguous)).toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: '7 test projects were found; say which one to run',
    });
    const unknown = await server.call('run_tests', { project: 'packages/nope:vitest' });
    expect(toolErrorOf(unknown)?.code).toBe('NOT_FOUND');
    expect(toolErrorOf(unknown)?.hint).toBe(
      `Pass a project id, its directory (relative or absolute inside the roots) or a unique directory name. Known projects: ${projects.map((p) => p['id']).join(', ')} (detect_projects lists them).`,
    );

    // Asked for the project run_tests would run: that one, or run_tests' own error, before any run.
    const one = await server.ok('detect_projects', { project: 'packages/mocha', versions: false });
    expect(one['projects']).toEqual([
      {
        id: 'packages/mocha:mocha',
        dir: 'packages/mocha',
        framework: 'mocha',
        detectedBy: '.mocharc.json',
        reporter: projects.find((p) => p['id'] === 'packages/mocha:mocha')!['reporter'] as string,
        command: projects.find((p) => p['id'] === 'packages/mocha:mocha')!['command'],
      },
    ]);
    expect(one['total']).toBe(1);
    const none = await server.call('detect_projects', { project: 'packages/nope:vitest', versions: false });
    expect(toolErrorOf(none)).toEqual(toolErrorOf(unknown));
  });

  it('lists the tests of a project, paged', async () => {
    const dir = await copyFixture('pytest');
    const server = await startServer(dir, kind);
    const first = await server.ok('list_tests', { limit: 1 });
    expect(first['tests']).toEqual([
      { name: 'tests/test_hang.py::test_spins_forever', file: 'tests/test_hang.py' },
    ]);
    expect(first['total']).toBe(3);
    expect(first['errors']).toEqual([
      { file: 'tests/test_broken.py', message: 'collection failed: ERROR tests/test_broken.py' },
    ]);
    const cursor = (first['truncated'] as { nextCursor: string }).nextCursor;
    const rest = await server.ok('list_tests', { limit: 10, cursor });
    expect(rest['tests']).toEqual([
      { name: 'tests/test_math.py::test_adds_small_numbers', file: 'tests/test_math.py' },
      { name: 'tests/test_math.py::test_adds_wrongly_on_purpose', file: 'tests/test_math.py' },
    ]);
  });
});

describe('list_tests across frameworks', () => {
  it('lists vitest tests by full name and file, and says why when collection fails', async () => {
    const dir = await copyFixture('vitest');
    const server = await startServer(dir, 'v1');
    const broken = await server.ok('list_tests');
    expect({ tests: broken['tests'], errorCount: (broken['errors'] as unknown[]).length }).toEqual({
      tests: [],
      errorCount: 1,
    });
    expect((broken['errors'] as Array<{ message: string }>)[0]!.message).toMatch(
      /^Error: Cannot find module '.\/does-not-exist.js'/,
    );
    await rm(path.join(dir, 'broken.test.js'));
    const listed = await server.ok('list_tests');
    expect(listed['tests']).toEqual([
      { name: 'passes every other run', file: 'flaky.test.js' },
      { name: 'spins forever', file: 'hang.test.js' },
      { name: 'add > adds small numbers', file: 'math.test.js' },
      { name: 'add > adds wrongly on purpose', file: 'math.test.js' },
    ]);
  });

  it.each([
    [
      'mocha',
      'test/broken.spec.js',
      [
        { name: 'spins forever', file: 'test/hang.spec.js' },
        { name: 'add adds small numbers', file: 'test/math.spec.js' },
        { name: 'add adds wrongly on purpose', file: 'test/math.spec.js' },
      ],
    ],
    [
      'jest',
      'broken.test.js',
      [
        { name: 'hang.test.js', file: 'hang.test.js' },
        { name: 'math.test.js', file: 'math.test.js' },
      ],
    ],
    [
      'cargo',
      'tests/broken.rs',
      [
        { name: 'tests::adds_small_numbers' },
        { name: 'tests::adds_wrongly_on_purpose' },
        { name: 'spins_forever' },
      ],
    ],
  ] as const)('lists %s tests', async (fixture, broken, expected) => {
    const dir = await copyFixture(fixture);
    await rm(path.join(dir, broken));
    const server = await startServer(dir, 'v2');
    const listed = await server.ok('list_tests');
    expect({ tests: listed['tests'], errors: listed['errors'] }).toEqual({ tests: expected, errors: [] });
  });

  it('says node:test cannot list without running', async () => {
    const server = await startServer(await copyFixture('node-test'), 'v2');
    expect(toolErrorOf(await server.call('list_tests'))).toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: "node-test cannot list tests without running them (project '.:node-test')",
    });
  });
});

describe('the results cache', () => {
  it('returns the stored run for an unchanged tree and runs again after a one-byte change', async () => {
    const dir = await copyFixture('vitest');
    const server = await startServer(dir, 'v2');
    const args = { files: ['math.test.js'] };
    const first = await server.ok('run_tests', args);
    expect(first['cached']).toBe(false);
    const second = await server.ok('run_tests', args);
    expect({ cached: second['cached'], runId: second['runId'] }).toEqual({
      cached: true,
      runId: first['runId'],
    });
    const forced = await server.ok('run_tests', { ...args, fresh: true });
    expect(forced['cached']).toBe(false);
    expect(forced['runId']).not.toBe(first['runId']);
    await appendFile(path.join(dir, 'math.js'), ' ');
    const changed = await server.ok('run_tests', args);
    expect(changed['cached']).toBe(false);
    // Other arguments are other inputs.
    const filtered = await server.ok('run_tests', { ...args, testNamePattern: 'small' });
    expect({ cached: filtered['cached'], outcome: filtered['outcome'], totals: filtered['totals'] }).toEqual({
      cached: false,
      outcome: 'passed',
      totals: { total: 2, passed: 1, failed: 0, skipped: 1 },
    });
  });

  it('in a git work tree, counts uncommitted and untracked files but not ignored ones', async () => {
    const dir = await copyFixture('vitest');
    const repo = await createGitRepo({ dir });
    await writeFile(path.join(dir, '.gitignore'), 'node_modules\n*.log\n');
    await repo.git(['add', '-A']);
    await repo.git(['commit', '-q', '-m', 'fixture']);
    const server = await startServer(dir, 'v1');
    const args = { files: ['math.test.js'] };
    const base = await server.ok('run_tests', args);
    expect(base['cached']).toBe(false);
    await writeFile(path.join(dir, 'debug.log'), 'ignored');
    expect((await server.ok('run_tests', args))['cached']).toBe(true);
    await appendFile(path.join(dir, 'math.js'), '\n');
    expect((await server.ok('run_tests', args))['cached']).toBe(false);
    await writeFile(path.join(dir, 'notes.txt'), 'untracked');
    expect((await server.ok('run_tests', args))['cached']).toBe(false);
    expect((await server.ok('run_tests', args))['cached']).toBe(true);
  });
});

describe('past runs', () => {
  it('pages failures and logs, re-runs only the failures, and tells flaky from consistent', async () => {
    const dir = await copyFixture('vitest');
    const server = await startServer(dir, 'v2');
    const run = await server.ok('run_tests', { files: ['math.test.js', 'flaky.test.js'], maxFailures: 1 });
    expect({ outcome: run['outcome'], totals: run['totals'], truncated: run['failuresTruncated'] }).toEqual({
      outcome: 'failed',
      totals: { total: 3, passed: 1, failed: 2, skipped: 0 },
      truncated: { limit: 1, unit: 'items', total: 2 },
    });
    const runId = run['runId'] as string;

    const page1 = await server.ok('get_run', { runId, limit: 1 });
    const page2 = await server.ok('get_run', {
      runId,
      limit: 1,
      cursor: (page1['truncated'] as { nextCursor: string }).nextCursor,
    });
    const names = [
      ...(page1['failures'] as Array<{ name: string }>),
      ...(page2['failures'] as Array<{ name: string }>),
    ]
      .map((f) => f.name)
      .sort();
    expect(names).toEqual(['add > adds wrongly on purpose', 'passes every other run']);
    expect(page2['truncated']).toBeUndefined();

    // Its text is a concise rendering, not the structured result as JSON.
    const filesPage = await server.call('get_run', { runId, section: 'files' });
    const [headline, ...rest] = filesPage.content[0]!.text!.split('\n');
    expect(headline).toMatch(
      new RegExp(`^\\.:vitest: FAILED — 1 passed, 2 failed, 0 skipped of 3 in \\d+ ms \\[${runId}\\]$`),
    );
    expect(rest).toEqual([
      'sandbox: bwrap (network off; only the roots writable; private HOME and /tmp)',
      'files (2):',
      'flaky.test.js: 0 passed, 1 failed, 0 skipped of 1',
      'math.test.js: 1 passed, 1 failed, 0 skipped of 2',
    ]);

    // The captured log pages byte-exactly: following the cursors gives back all of it.
    let log = '';
    let logCursor: string | undefined;
    let logTotal = 0;
    let pages = 0;
    do {
      const page = await server.ok('get_run', {
        runId,
        section: 'stdout',
        maxBytes: 256,
        ...(logCursor === undefined ? {} : { cursor: logCursor }),
      });
      log += page['text'] as string;
      logTotal = page['total'] as number;
      logCursor = (page['truncated'] as { nextCursor?: string } | undefined)?.nextCursor;
      pages++;
    } while (logCursor !== undefined && pages < 100);
    expect(Buffer.byteLength(log)).toBe(logTotal);
    expect(pages).toBeGreaterThan(1);

    const rerun = await server.ok('rerun_failed', { runId });
    expect({ rerunOf: rerun['rerunOf'], outcome: rerun['outcome'], totals: rerun['totals'] }).toEqual({
      rerunOf: runId,
      outcome: 'failed',
      // The passing test is not run again; the flaky one passes this time.
      totals: { total: 3, passed: 1, failed: 1, skipped: 1 },
    });

    const flaky = await server.ok('classify_flaky', { runId, attempts: 2 });
    expect({
      tests: flaky['tests'],
      flaky: flaky['flaky'],
      consistent: flaky['consistent'],
      notRun: flaky['notRun'],
    }).toEqual({
      tests: [
        { name: 'passes every other run', file: 'flaky.test.js', verdict: 'flaky', passes: 1, failures: 1 },
        {
          name: 'add > adds wrongly on purpose',
          file: 'math.test.js',
          verdict: 'consistent',
          passes: 0,
          failures: 2,
        },
      ],
      flaky: 1,
      consistent: 1,
      notRun: 0,
    });

    const missing = await server.call('get_run', { runId: 'run_0000000000000000' });
    expect(toolErrorOf(missing)).toMatchObject({
      code: 'NOT_FOUND',
      message: "run 'run_0000000000000000' was not found",
    });
  });

  it('sends progress notifications while a run is under way', async () => {
    const dir = await copyFixture('vitest');
    const server = await startServer(dir, 'v2');
    const seen: Array<{ progress: number; message?: string }> = [];
    const result = await server.call(
      'run_tests',
      { files: ['hang.test.js'], timeoutMs: 2500 },
      { onprogress: (p) => seen.push(p as never), timeout: 60_000 },
    );
    expect(result.structuredContent?.['outcome']).toBe('timeout');
    expect(seen[0]).toEqual({ progress: 0, message: 'running .:vitest' });
    expect(seen.at(-1)).toMatchObject({ message: '.:vitest: timeout (0 passed, 0 failed)' });
    const steps = seen.map((p) => p.progress);
    expect(steps).toEqual([...steps].sort((a, b) => a - b));
    expect(new Set(steps).size).toBe(steps.length);
    // A timeout is never served from the cache: the same call runs again.
    const again = await server.ok('run_tests', { files: ['hang.test.js'], timeoutMs: 2500 });
    expect({ outcome: again['outcome'], cached: again['cached'] }).toEqual({
      outcome: 'timeout',
      cached: false,
    });
  });
});

describe('the projects config file and HTTP', () => {
  it('runs a project a person declared, with the launcher they chose', async () => {
    const root = await tempDir();
    const dir = path.join(root, 'nt');
    await mkdir(dir);
    await copyFixture('node-test', dir);
    // Without a `node --test` script nothing would detect it.
    await writeFile(path.join(dir, 'package.json'), JSON.stringify({ name: 'plain', private: true }));
    const config = path.join(await tempDir(), 'projects.json');
    await writeFile(
      config,
      JSON.stringify({ projects: [{ dir: 'nt', framework: 'node-test', command: ['node'] }] }),
    );
    const server = await startServer(root, 'v1', ['--config', config]);
    const detected = await server.ok('detect_projects');
    expect(
      (detected['projects'] as Array<Record<string, unknown>>).map((p) => [
        p['id'],
        p['detectedBy'],
        (p['command'] as string[])[0],
      ]),
    ).toEqual([['nt:node-test', 'config file', 'node']]);
    const run = await server.ok('run_tests', { files: ['nt/test/math.test.js'] });
    expect({ outcome: run['outcome'], totals: run['totals'] }).toEqual({
      outcome: 'failed',
      totals: { total: 2, passed: 1, failed: 1, skipped: 0 },
    });
  });

  it('refuses to start with a config file that is not valid', async () => {
    const config = path.join(await tempDir(), 'projects.json');
    await writeFile(config, JSON.stringify({ projects: [{ dir: 'x', framework: 'ant' }] }));
    const started = await execFileAsync(process.execPath, [
      binPath,
      '--root',
      await tempDir(),
      '--state-dir',
      await tempDir(),
      '--config',
      config,
    ]).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => ({ code: error.code, stderr: error.stderr }),
    );
    expect(started.code).toBe(2);
    expect(JSON.parse(started.stderr.trim().split('\n').at(-1)!)).toMatchObject({
      level: 'error',
      msg: `config file '${config}' is not valid: projects.0.framework: Invalid option: expected one of "vitest"|"jest"|"node-test"|"mocha"|"tape"|"node-tap"|"pytest"|"go"|"cargo"`,
      hint: 'Each project needs dir and framework (one of vitest, jest, node-test, mocha, tape, node-tap, pytest, go, cargo) with an optional command, or name and command (a test command run as it is) with optional dir, format (auto, tap, junit, text) and report.',
    });
  });

  it('serves the same tools over Streamable HTTP on loopback', async () => {
    const dir = await copyFixture('cargo');
    const http = await startHttpServer({
      command: process.execPath,
      args: [binPath, '--root', dir, '--state-dir', await tempDir(), '--http', '--port', '0'],
    });
    const client = await connectHttp(http.url, 'v2');
    const result = await client.callTool(
      { name: 'run_tests', arguments: { files: ['src/lib.rs'] } },
      { timeout: 120_000 },
    );
    expect({
      outcome: result.structuredContent?.['outcome'],
      totals: result.structuredContent?.['totals'],
    }).toEqual({
      outcome: 'failed',
      totals: { total: 2, passed: 1, failed: 1, skipped: 0 },
    });
  });
});
