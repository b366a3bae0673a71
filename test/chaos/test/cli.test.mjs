import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const runner = path.join(new URL('..', import.meta.url).pathname, 'src', 'run.mjs');
// Every case here stops at argument checking, before a lane or a server starts.
const chaos = (...args) => spawnSync(process.execPath, [runner, ...args], { encoding: 'utf8' });

describe('pnpm chaos arguments', () => {
  it('--help prints every option and exits 0', () => {
    const result = chaos('--help');
    expect(result.status).toBe(0);
    for (const option of [
      '--seed',
      '--minutes',
      '--deaths',
      '--lanes',
      '--tiers',
      '--b-share',
      '--cd-share',
      '--cd-point',
      '--pg',
      '--report',
      '--sample',
    ])
      expect(result.stdout).toContain(`  ${option} `);
  });

  it('an unknown option is a usage error with a hint, not a stack trace', () => {
    const result = chaos('--bogus');
    expect(result.status).toBe(2);
    expect(result.stderr).toBe(
      "chaos: Unknown option '--bogus'\nhint: pnpm chaos --help lists the options\n",
    );
  });

  it('a share outside 0..1 and a bad minute count are refused', () => {
    const share = chaos('--tiers', 'A', '--b-share', '1.5');
    expect(share.status).toBe(2);
    expect(share.stderr).toBe(
      "chaos: --b-share '1.5' is not a share from 0 to 1\nhint: e.g. --b-share 0.2\n",
    );
    const minutes = chaos('--tiers', 'A', '--minutes=abc');
    expect(minutes.status).toBe(2);
    expect(minutes.stderr).toBe("chaos: --minutes 'abc' is not a positive number\nhint: e.g. --minutes 30\n");
  });
});
