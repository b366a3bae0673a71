import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const runner = path.join(new URL('..', import.meta.url).pathname, 'src', 'run.mjs');
const bench = (...args) => spawnSync(process.execPath, [runner, ...args], { encoding: 'utf8' });

describe('pnpm bench arguments', () => {
  it('--help names every suite and runs none', () => {
    const result = bench('--help');
    expect(result.status).toBe(0);
    expect(result.stdout).toContain(
      'suites (default: all): kit, filesystem, git, test-runner, supervisor, cli, deploy, scale, harness, context\n',
    );
    expect(result.stderr).toBe('');
  });

  it('an unknown suite is refused before any suite starts', () => {
    const result = bench('git', 'nope');
    expect(result.status).toBe(2);
    expect(result.stderr).toBe(
      'unknown suite(s): nope; known: kit, filesystem, git, test-runner, supervisor, cli, deploy, scale, harness, context\nhint: pnpm bench --help\n',
    );
  });
});
