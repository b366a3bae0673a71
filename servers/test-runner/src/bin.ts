#!/usr/bin/env node
import { packageVersion, runServerCli } from '@keel/kit/cli';
import { createTestRunnerTools, loadProjectsConfig } from './index.js';

const code = await runServerCli<{ config?: string }>({
  name: 'keel-test-runner',
  bin: 'keel-test-runner',
  version: packageVersion(new URL('../package.json', import.meta.url)),
  description:
    "Runs a project's tests (vitest, jest, node:test, mocha, pytest, go, cargo) and returns typed, bounded failures.",
  argv: process.argv,
  env: process.env,
  configure: (program) =>
    program.option(
      '--config <file>',
      'a JSON file declaring projects and, optionally, the command that launches each framework',
    ),
  helpText: '\nExample:\n  keel-test-runner --root .\n',
  // A bad --config throws a KeelError, which the kit reports with its hint and exit code 2.
  build: async ({ options, env, stateStore }) => {
    const projects = options.config === undefined ? [] : await loadProjectsConfig(options.config);
    return createTestRunnerTools({
      store: stateStore('test-runner'),
      stateDir: options.stateDir,
      env,
      projects,
    });
  },
});
process.exit(code);
