import { KeelError } from '@keel/kit';
import { describe, expect, it } from 'vitest';
import { parseDeployConfig } from '../src/index.js';

const parse = (text: string, file = 'keel.deploy.yaml') => parseDeployConfig(text, file, '/project');
const problems = (text: string, file?: string): unknown => {
  try {
    parse(text, file);
  } catch (error) {
    if (error instanceof KeelError) return error.details?.['problems'] ?? error.message;
    throw error;
  }
  throw new Error('the config was accepted');
};

describe('deploy config', () => {
  it('resolves paths against the project root and fills defaults', () => {
    const config = parse(`
environments:
  staging:
    build: dist
    target: { type: directory, path: ../deploys/staging }
    policy:
      health: { http: "http://127.0.0.1:8080/health" }
`);
    expect(config.environments.get('staging')).toEqual({
      name: 'staging',
      build: '/project/dist',
      buildAsWritten: 'dist',
      target: { type: 'directory', path: '/deploys/staging', pathAsWritten: '../deploys/staging' },
      policy: {
        requiresApproval: false,
        keep: 5,
        health: { http: 'http://127.0.0.1:8080/health', expectStatus: 200, timeoutMs: 10_000 },
      },
      lock: { leaseSeconds: 60 },
    });
    expect(config.maxFiles).toBe(100_000);
  });

  it('reads JSON by extension', () => {
    const config = parse(
      JSON.stringify({
        environments: {
          prod: {
            build: 'out',
            target: { type: 'directory', path: '/srv/prod' },
            policy: { requiresApproval: true, keep: 3 },
          },
        },
      }),
      'keel.deploy.json',
    );
    expect(config.environments.get('prod')?.policy).toEqual({
      requiresApproval: true,
      keep: 3,
      health: undefined,
    });
  });

  it('names every field that is wrong', () => {
    expect(
      problems(`
environments:
  Staging:
    build: dist
    target: { type: directory, path: /srv/s }
  prod:
    target: { type: ftp, path: /srv/p }
    policy: { keep: 0, requiresApproval: "yes", health: { http: "http://x/h", command: [curl] } }
    extra: 1
`),
    ).toEqual([
      'environments.prod.build: Invalid input: expected string, received undefined',
      "environments.prod.target.type: Invalid discriminator value. Expected 'directory' | 'command'",
      'environments.prod.policy.requiresApproval: Invalid input: expected boolean, received string',
      'environments.prod.policy.keep: Too small: expected number to be >=1',
      'environments.prod.policy.health: give exactly one of http (a URL) or command (an argument array)',
      'environments.prod: Unrecognized key: "extra"',
      'environments.Staging: an environment name is lowercase letters, digits and dashes, starting with a letter (at most 32)',
    ]);
  });

  it('refuses a build outside the project and a target that overlaps the build', () => {
    expect(
      problems('environments: { s: { build: ../elsewhere, target: { type: directory, path: /srv/s } } }'),
    ).toBe("deploy config: environments.s.build: '../elsewhere' must be a directory inside the project root");
    expect(
      problems('environments: { s: { build: dist, target: { type: directory, path: dist/out } } }'),
    ).toBe("deploy config: environments.s.target.path: 'dist/out' overlaps the build directory");
    expect(problems('environments: {}')).toEqual(['environments: define at least one environment']);
    expect(problems('environments: [oops')).toMatch(/^deploy config 'keel.deploy.yaml' is not valid YAML: /);
  });
});
