import { execFile } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { defaultEnvAllowlist } from '@keel/kit';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';

const execFileAsync = promisify(execFile);
const serverDir = fileURLToPath(new URL('../../../../servers/test-runner/', import.meta.url));
const bin = path.join(serverDir, 'dist', 'bin.js');
const iterations = 6;
// The reference gets the environment the server gives its children (the kit's allowlist plus what
// the server sets), so both sides run the same way: variables such as NODE_EXTRA_CA_CERTS or
// PYTHONUNBUFFERED in the caller's environment would otherwise slow only one side.
const directEnv = {
  ...Object.fromEntries(
    [...defaultEnvAllowlist, 'PYENV_ROOT', 'PYENV_VERSION', 'VIRTUAL_ENV']
      .filter((n) => process.env[n] !== undefined)
      .map((n) => [n, process.env[n]]),
  ),
  CI: '1',
  NO_COLOR: '1',
  FORCE_COLOR: '0',
  PYTHONDONTWRITEBYTECODE: '1',
};

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

async function time(fn) {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

/** A vitest suite: 20 files of 10 small tests, resolving vitest from the server package. */
async function vitestSuite(dir) {
  await mkdir(dir, { recursive: true });
  await writeFile(
    path.join(dir, 'package.json'),
    JSON.stringify({ name: 'bench-vitest', private: true, type: 'module', devDependencies: { vitest: '*' } }),
  );
  await symlink(path.join(serverDir, 'node_modules'), path.join(dir, 'node_modules'));
  for (let f = 0; f < 20; f++) {
    const tests = Array.from(
      { length: 10 },
      (_, t) => `  it('case ${t}', () => { expect(${f} + ${t}).toBe(${f + t}); });`,
    ).join('\n');
    await writeFile(
      path.join(dir, `suite${f}.test.js`),
      `import { describe, expect, it } from 'vitest';\ndescribe('suite ${f}', () => {\n${tests}\n});\n`,
    );
  }
  return {
    id: '.:vitest',
    direct: [process.execPath, path.join(serverDir, 'node_modules', 'vitest', 'vitest.mjs'), 'run'],
  };
}

/** A pytest suite of the same shape. */
async function pytestSuite(dir) {
  await mkdir(path.join(dir, 'tests'), { recursive: true });
  await writeFile(path.join(dir, 'pytest.ini'), '[pytest]\ntestpaths = tests\n');
  for (let f = 0; f < 20; f++) {
    const tests = Array.from(
      { length: 10 },
      (_, t) => `def test_case_${t}():\n    assert ${f} + ${t} == ${f + t}\n`,
    ).join('\n');
    await writeFile(path.join(dir, 'tests', `test_suite${f}.py`), tests);
  }
  return { id: '.:pytest', direct: ['python3', '-m', 'pytest', '-p', 'no:cacheprovider', '-q'] };
}

async function connect(root, stateDir) {
  const transport = new StdioClientTransport({
    command: process.execPath,
    // The fixture's node_modules is a link to the server package's (and pnpm's store above it): the
    // sandbox must see them to run vitest, as a project's own node_modules inside its root would be.
    args: [
      bin,
      '--root',
      root,
      '--state-dir',
      stateDir,
      '--log-level',
      'error',
      '--sandbox-expose',
      path.join(serverDir, 'node_modules'),
      '--sandbox-expose',
      path.join(serverDir, '..', '..', 'node_modules'),
    ],
    stderr: 'ignore',
  });
  const client = new Client({ name: 'keel-bench', version: '0.0.0' });
  await client.connect(transport);
  return client;
}

async function runTests(client, args) {
  const result = await client.callTool({ name: 'run_tests', arguments: args }, { timeout: 300_000 });
  if (result.isError) throw new Error(`run_tests failed: ${result.content?.[0]?.text}`);
  return result.structuredContent;
}

export async function run({ log, workDir }) {
  const rows = [];
  for (const [name, make] of [
    ['vitest', vitestSuite],
    ['pytest', pytestSuite],
  ]) {
    const dir = path.join(workDir, `test-runner-${name}`);
    const suite = await make(dir);
    const client = await connect(dir, path.join(workDir, `test-runner-state-${name}`));
    try {
      log(`test-runner: ${name} suite of 200 tests, ${iterations} iterations each`);
      // Warm both paths once (file system cache, compiled bytecode) before measuring.
      await execFileAsync(suite.direct[0], suite.direct.slice(1), { cwd: dir, env: directEnv });
      const warm = await runTests(client, { fresh: true });
      if (warm.outcome !== 'passed' || warm.totals.total !== 200)
        throw new Error(`unexpected warm-up result: ${warm.outcome} ${JSON.stringify(warm.totals)}`);
      const direct = [];
      const fresh = [];
      const cached = [];
      for (let i = 0; i < iterations; i++) {
        // Alternate which side goes first, so a warm-up or machine-load drift favours neither.
        const runDirect = async () =>
          direct.push(
            await time(() =>
              execFileAsync(suite.direct[0], suite.direct.slice(1), { cwd: dir, env: directEnv }),
            ),
          );
        const runKeel = async () => fresh.push(await time(() => runTests(client, { fresh: true })));
        if (i % 2 === 0) {
          await runDirect();
          await runKeel();
        } else {
          await runKeel();
          await runDirect();
        }
        cached.push(
          await time(async () => {
            const out = await runTests(client, {});
            if (!out.cached) throw new Error('expected a cache hit on an unchanged tree');
          }),
        );
      }
      const [d, f, c] = [median(direct), median(fresh), median(cached)];
      log(
        `test-runner: ${name} direct ${d.toFixed(0)} ms, run_tests fresh ${f.toFixed(0)} ms, cached ${c.toFixed(1)} ms`,
      );
      rows.push({
        name: `test-runner ${name}: cache hit vs fresh run (200 tests)`,
        keel: Math.round(c * 10) / 10,
        reference: Math.round(f),
        unit: 'ms',
        ratio: c / f,
        target: '<= 0.05',
        note: 'reference = run_tests with fresh: true on the same unchanged tree',
      });
      rows.push({
        name: `test-runner ${name}: run_tests vs the framework's own command (200 tests)`,
        keel: Math.round(f),
        reference: Math.round(d),
        unit: 'ms',
        ratio: f / d,
        target: '<= 1.15',
        note: `reference = ${suite.direct.slice(name === 'vitest' ? 2 : 0).join(' ')} spawned directly`,
      });
    } finally {
      await client.close();
    }
  }
  return rows;
}
