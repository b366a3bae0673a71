#!/usr/bin/env node
import { createSandbox, sandboxModes, type SandboxMode } from '@keel/kit';
import { collect, Option, packageVersion, runServerCli } from '@keel/kit/cli';
import { commandFormats, createTestRunnerTools, loadProjectsConfig, type CommandFormat } from './index.js';

interface TestRunnerFlags {
  config?: string;
  command?: string;
  commandFormat: CommandFormat;
  sandbox: SandboxMode;
  allowUnsandboxed: boolean;
  sandboxExpose?: string[];
  bwrap?: string;
}

const code = await runServerCli<TestRunnerFlags>({
  name: 'keel-test-runner',
  bin: 'keel-test-runner',
  version: packageVersion(new URL('../package.json', import.meta.url)),
  description:
    "Runs a project's tests (vitest, jest, node:test, mocha, tape, node-tap, pytest, go, cargo, or its own test command) in a sandbox and returns typed, bounded failures.",
  argv: process.argv,
  env: process.env,
  configure: (program) =>
    program
      .option(
        '--config <file>',
        'a JSON file declaring projects: frameworks with the command that launches them, or test commands run as they are',
      )
      .option(
        '--command <words>',
        "the project's test command, run in the first root as the project .:command; split on spaces, no shell (e.g. 'npm test')",
      )
      .addOption(
        new Option(
          '--command-format <format>',
          'how the --command output is read: auto (TAP if it prints TAP, else the exit code), tap, junit or text',
        )
          .choices(commandFormats)
          .default('auto'),
      )
      .addOption(
        new Option(
          '--sandbox <mode>',
          'run test code under bubblewrap: auto (when it works here), bwrap (always, else refuse) or none',
        )
          .choices(sandboxModes)
          .default('auto'),
      )
      .option(
        '--allow-unsandboxed',
        'under CI=true, run tests without a sandbox when bwrap is missing instead of refusing',
        false,
      )
      .option(
        '--sandbox-expose <dir>',
        'a directory test runs may read besides the system, the roots and the PATH (a toolchain or dependency store elsewhere; repeatable)',
        collect,
      )
      .option('--bwrap <program>', 'the bubblewrap program (default: bwrap on PATH)'),
  helpText: "\nExamples:\n  keel-test-runner --root .\n  keel-test-runner --root . --command 'npm test'\n",
  // A bad --config throws a KeelError, which the kit reports with its hint and exit code 2.
  build: async ({ options, env, stateStore, logger }) => {
    const projects = options.config === undefined ? [] : await loadProjectsConfig(options.config);
    const argv = options.command?.trim().split(/\s+/).filter(Boolean) ?? [];
    if (argv.length > 0)
      projects.push({
        dir: '.',
        framework: 'command',
        name: 'command',
        command: { argv, format: options.commandFormat },
      });
    const ci = env['CI'] !== undefined && !['', '0', 'false'].includes(env['CI'].toLowerCase());
    const sandbox = createSandbox({
      mode: options.sandbox,
      requireSandbox: ci && !options.allowUnsandboxed,
      readOnly: options.sandboxExpose ?? [],
      // Keel's own files are never visible inside, even when they lie in a root.
      // What the supervisor denies (--deny-path: its task store, keys, config) is hidden the same way.
      hidden: [
        options.stateDir,
        ...options.denyPath,
        ...(options.config === undefined ? [] : [options.config]),
      ],
      env,
      ...(options.bwrap === undefined ? {} : { bwrapPath: options.bwrap }),
    });
    const status = await sandbox.status();
    if (!status.ok)
      logger.error('test runs will be refused', { reason: status.error.message, hint: status.error.hint });
    else if (status.value.kind === 'none')
      logger.warn('test runs are not sandboxed', { reason: status.value.reason });
    else logger.info('test runs are sandboxed', { sandbox: 'bwrap' });
    return createTestRunnerTools({
      store: stateStore('test-runner'),
      stateDir: options.stateDir,
      env,
      projects,
      sandbox,
    });
  },
});
process.exit(code);
