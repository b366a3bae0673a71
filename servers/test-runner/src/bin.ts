#!/usr/bin/env node
import { KeelError } from '@keel/kit';
import { runServerCli } from '@keel/kit/cli';
import { createTestRunnerTools, loadProjectsConfig } from './index.js';

const code = await runServerCli<{ config?: string }>({
  name: 'keel-test-runner',
  bin: 'keel-test-runner',
  version: '0.1.0',
  description: "Runs a project's tests (vitest, jest, node:test, mocha, pytest, go, cargo) and returns typed, bounded failures.",
  argv: process.argv,
  env: process.env,
  configure: (program) =>
    program.option('--config <file>', 'a JSON file declaring projects and, optionally, the command that launches each framework'),
  helpText: '\nExample:\n  keel-test-runner --root .\n',
  build: async ({ options, env, logger }) => {
    let projects;
    try {
      projects = options.config === undefined ? [] : await loadProjectsConfig(options.config);
    } catch (error) {
      if (error instanceof KeelError) {
        logger.error(error.message, { hint: error.hint });
        process.exit(2);
      }
      throw error;
    }
    return { tools: createTestRunnerTools({ stateDir: options.stateDir, env, projects }) };
  },
});
process.exit(code);
