import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createPathJail } from '@keel/kit';
import { tempDir } from '@keel/testing';
import { describe, expect, it } from 'vitest';
import { detectProjects } from '../../src/projects/detect.js';

async function tree(root: string, files: Record<string, string>) {
  for (const [file, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, file)), { recursive: true });
    await writeFile(path.join(root, file), content);
  }
}

describe('project detection', () => {
  it('reads each signal, skips dependency dirs and nested conftest files of a pytest project', async () => {
    const root = await tempDir();
    await tree(root, {
      'web/package.json': JSON.stringify({
        devDependencies: { jest: '30' },
        scripts: { test: 'node --experimental-vm-modules --test' },
      }),
      'web/vitest.config.ts': 'export default {};',
      'lib/package.json': JSON.stringify({ scripts: { test: 'mocha' } }),
      'py/pyproject.toml': '[project]\nname = "x"\n\n[tool.pytest.ini_options]\naddopts = "-q"\n',
      'py/tests/conftest.py': '',
      'cfg/setup.cfg': '[tool:pytest]\n',
      'tox/tox.ini': '[pytest]\n',
      'loose/conftest.py': '',
      'notpy/pyproject.toml': '[project]\nname = "y"\n',
      'rust/Cargo.toml': '[package]\nname = "r"\n',
      'rust-ws/Cargo.toml': '[workspace]\nmembers = []\n',
      'go/go.mod': 'module example.com/g\n',
      'web/node_modules/dep/package.json': JSON.stringify({ devDependencies: { vitest: '4' } }),
      '.hidden/package.json': JSON.stringify({ devDependencies: { vitest: '4' } }),
      'plain/package.json': JSON.stringify({ scripts: { test: 'echo no tests' } }),
      // A runner kept only as a dependency (for fixtures) is no project...
      'fixtures/package.json': JSON.stringify({ devDependencies: { mocha: '11' } }),
      'npm-init/package.json': JSON.stringify({
        devDependencies: { jest: '30' },
        scripts: { test: 'echo "Error: no test specified" && exit 1' },
      }),
      // ...unless a test script hands over to it without naming a runner.
      'delegating/package.json': JSON.stringify({
        devDependencies: { vitest: '4' },
        scripts: { test: 'pnpm run test:unit' },
      }),
    });
    const { projects, capped } = await detectProjects(await createPathJail([root]));
    expect(capped).toBe(false);
    expect(projects.map((p) => [p.id, p.detectedBy])).toEqual([
      ['cfg:pytest', 'setup.cfg'],
      ['delegating:vitest', 'package.json'],
      ['go:go', 'go.mod'],
      ['lib:mocha', 'package.json'],
      ['loose:pytest', 'conftest.py'],
      // A test script in no framework the server knows runs as `npm test`.
      ['plain:npm-test', 'package.json scripts.test'],
      ['py:pytest', 'pyproject.toml'],
      ['rust:cargo', 'Cargo.toml'],
      ['tox:pytest', 'tox.ini'],
      ['web:node-test', 'package.json'],
      ['web:vitest', 'vitest.config.ts'],
    ]);
  });
});
