import { access, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempDir, toolErrorOf } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { copyFixture, hostPid, startServer } from './helpers.js';

const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

// Shell metacharacters and option look-alikes: if any of them reached a shell or an option parser,
// a `pwned` file would appear or the run would change shape.
const hostilePatterns = [
  '$(touch pwned)',
  '`touch pwned`',
  '; touch pwned #',
  '--config=evil.js',
  '-p evil',
  '--require=./evil.cjs',
];

describe('injection through tool arguments runs nothing else', () => {
  it.each([
    ['vitest', 'v2', 'no_tests'],
    ['jest', 'v1', 'no_tests'],
    ['mocha', 'v2', 'no_tests'],
    ['node-test', 'v1', 'no_tests'],
    ['cargo', 'v2', 'no_tests'],
  ] as const)('%s treats hostile test-name patterns as data (%s client)', async (fixture, kind, outcome) => {
    const dir = await copyFixture(fixture);
    await writeFile(
      path.join(dir, 'evil.cjs'),
      "require('node:fs').writeFileSync(__dirname + '/pwned', 'x');\n",
    );
    await writeFile(
      path.join(dir, 'evil.js'),
      "require('node:fs').writeFileSync(__dirname + '/pwned', 'x');\n",
    );
    const server = await startServer(dir, kind);
    const files = {
      vitest: ['math.test.js'],
      jest: ['math.test.js'],
      mocha: ['test/math.spec.js'],
      'node-test': ['test/math.test.js'],
      cargo: ['src/lib.rs'],
    }[fixture];
    const outcomes: string[] = [];
    for (const testNamePattern of hostilePatterns) {
      const result = await server.ok('run_tests', { files, testNamePattern });
      outcomes.push(result['outcome'] as string);
    }
    expect(outcomes).toEqual(hostilePatterns.map(() => outcome));
    expect(await exists(path.join(dir, 'pwned'))).toBe(false);
  });

  it('pytest gets its -k expression as one argument and evaluates nothing', async () => {
    const dir = await copyFixture('pytest');
    const server = await startServer(dir, 'v2');
    const outcomes: string[] = [];
    for (const testNamePattern of [...hostilePatterns, "__import__('os').system('touch pwned')"]) {
      const result = await server.ok('run_tests', { files: ['tests/test_math.py'], testNamePattern });
      outcomes.push(result['outcome'] as string);
    }
    // pytest refuses expressions it cannot parse: an explicit error, never "passed".
    expect(outcomes).toEqual(['error', 'error', 'error', 'error', 'error', 'error', 'error']);
    expect(await exists(path.join(dir, 'pwned'))).toBe(false);
  });

  it('takes a file named like an option as a file', async () => {
    const dir = await copyFixture('mocha');
    await writeFile(
      path.join(dir, 'evil.cjs'),
      "require('node:fs').writeFileSync(__dirname + '/pwned', 'x');\n",
    );
    await writeFile(path.join(dir, '--require=evil.cjs'), "it('is just a spec file', () => {});\n");
    const server = await startServer(dir, 'v1');
    const result = await server.ok('run_tests', { files: ['--require=evil.cjs'] });
    expect({ outcome: result['outcome'], totals: result['totals'] }).toEqual({
      outcome: 'passed',
      totals: { total: 1, passed: 1, failed: 0, skipped: 0 },
    });
    expect(await exists(path.join(dir, 'pwned'))).toBe(false);
  });

  it('matches project ids and run ids as data, never as paths or commands', async () => {
    const dir = await copyFixture('vitest');
    const server = await startServer(dir, 'v1');
    for (const project of ['$(touch pwned)', '../..:vitest', '.:vitest; touch pwned']) {
      expect(toolErrorOf(await server.call('run_tests', { project }))?.code).toBe('NOT_FOUND');
    }
    for (const runId of ['../../etc/passwd', 'run_../../x', '$(touch pwned)']) {
      expect(toolErrorOf(await server.call('get_run', { runId }))?.code).toBe('NOT_FOUND');
      expect(toolErrorOf(await server.call('rerun_failed', { runId }))?.code).toBe('NOT_FOUND');
    }
    expect(await exists(path.join(dir, 'pwned'))).toBe(false);
  });

  it('ignores a command smuggled in as an extra argument', async () => {
    const dir = await copyFixture('vitest');
    const server = await startServer(dir, 'v2');
    const result = await server.ok('run_tests', {
      files: ['math.test.js'],
      command: ['touch', 'pwned'],
      args: ['pwned'],
    });
    expect(result['outcome']).toBe('failed');
    expect(await exists(path.join(dir, 'pwned'))).toBe(false);
  });
});

describe('files must stay inside the roots and the project', () => {
  it.each(['v2', 'v1'] as const)('refuses escapes with a structured error (%s client)', async (kind) => {
    const root = await tempDir();
    const project = path.join(root, 'app');
    await mkdir(project);
    await copyFixture('vitest', project);
    await writeFile(path.join(root, 'loose.test.js'), '');
    const outside = await tempDir();
    await writeFile(path.join(outside, 'secret.test.js'), '');
    await symlink(path.join(outside, 'secret.test.js'), path.join(project, 'link.test.js'));
    const server = await startServer(root, kind);

    const codeOf = async (files: string[]) =>
      toolErrorOf(await server.call('run_tests', { project: 'app:vitest', files }))?.code;
    expect(await codeOf(['../etc/passwd'])).toBe('OUTSIDE_ROOTS');
    expect(await codeOf([path.join(outside, 'secret.test.js')])).toBe('OUTSIDE_ROOTS');
    expect(await codeOf(['app/link.test.js'])).toBe('OUTSIDE_ROOTS');
    expect(await codeOf(['app/missing.test.js'])).toBe('NOT_FOUND');
    const wrongProject = await server.call('run_tests', { project: 'app:vitest', files: ['loose.test.js'] });
    expect(toolErrorOf(wrongProject)).toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: "file 'loose.test.js' is not inside project 'app:vitest'",
      hint: 'Pass files under app, or pick the project that holds them.',
    });
  });

  it('refuses a test-name pattern with control characters as INVALID_ARGUMENT', async () => {
    const dir = await copyFixture('vitest');
    const server = await startServer(dir, 'v2');
    const result = await server.call('run_tests', { testNamePattern: 'a\nb' });
    expect(toolErrorOf(result)).toMatchObject({
      code: 'INVALID_ARGUMENT',
      details: { issues: [{ path: ['testNamePattern'] }] },
    });
  });
});

describe('cancellation', () => {
  it('stops the run and its processes when the client cancels', async () => {
    const dir = await copyFixture('pytest');
    const server = await startServer(dir, 'v2');
    const controller = new AbortController();
    const pidFile = path.join(dir, 'hang.pid');
    const call = server.call(
      'run_tests',
      { files: ['tests/test_hang.py'], timeoutMs: 600_000 },
      { signal: controller.signal, timeout: 600_000 },
    );
    call.catch(() => undefined);
    while (!(await exists(pidFile))) await sleep(50);
    const pid = await hostPid(dir, Number(await readFile(pidFile, 'utf8')));
    if (pid === undefined) throw new Error('the hanging test process was not found');
    controller.abort();
    await expect(call).rejects.toThrow(/abort/i);
    // The test process belongs to the run's process group, which the server kills.
    let alive = true;
    for (let i = 0; i < 200 && alive; i++) {
      try {
        process.kill(pid, 0);
        await sleep(50);
      } catch {
        alive = false;
      }
    }
    expect(alive).toBe(false);
  });
});
