#!/usr/bin/env node
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { KeelError } from '@keel/kit';
import { collect, packageVersion, runServerCli } from '@keel/kit/cli';
import { registerApprovalCommands } from './cli/approvalCommands.js';
import { registerResolveCommand } from './cli/resolveCommand.js';
import { createDeployServerTools, defaultConfigNames, loadDeployConfig, parsePublicKey } from './index.js';

interface DeployFlags {
  config?: string;
  approvalKey?: string[];
}

const code = await runServerCli<DeployFlags>({
  name: 'keel-deploy',
  bin: 'keel-deploy',
  version: packageVersion(new URL('../package.json', import.meta.url)),
  description:
    'The Keel deploy MCP server: plan, apply only what was planned, switch atomically, health-gate with automatic rollback, and never let a model confirm its own production deploy.',
  argv: process.argv,
  env: process.env,
  configure: (program) => {
    program
      .option(
        '--config <file>',
        `the deploy config (YAML or JSON), relative to the first root; default: ${defaultConfigNames.join(', ')} there`,
      )
      .option(
        '--approval-key <file>',
        'a public key (PEM, Ed25519) whose approval tokens this server accepts (repeatable)',
        collect,
      );
  },
  commands: (program, context) => {
    registerApprovalCommands(program, context);
    registerResolveCommand(program, context);
  },
  helpText: `
Subcommands:
  keel-deploy keygen [--private-key FILE] [--public-key FILE]
  keel-deploy approve <planId> --signing-key FILE --environment ENV --plan-hash HASH --approver NAME [--ttl 15m]
  keel-deploy resolve <environment> --live <releaseId|none> [--state-dir DIR]

Example:
  keel-deploy --root . --config keel.deploy.yaml --approval-key keel-approval.pub
`,
  build: ({ options, jail, logger, stateStore }) => {
    const projectRoot = jail.roots[0]!;
    // Relative to the project root, not to wherever a client happened to start the server.
    const file =
      options.config === undefined ? findConfig(projectRoot) : path.resolve(projectRoot, options.config);
    const config = loadDeployConfig(file, projectRoot);
    const approvalKeys = (options.approvalKey ?? []).map((keyFile) => {
      try {
        return parsePublicKey(readFileSync(keyFile, 'utf8'), keyFile);
      } catch (error) {
        throw new KeelError('INVALID_ARGUMENT', `--approval-key ${keyFile}: ${(error as Error).message}`, {
          hint: 'Pass the public key file that keel-deploy keygen wrote (keel-approval.pub).',
        });
      }
    });
    const crashAt = process.env['KEEL_CRASH_AT'];
    // The kit logs its own points (`kit.…`); the supervisor's are not this server's.
    if (crashAt !== undefined && crashAt !== '' && !/^(kit|supervisor)\./.test(crashAt))
      logger.warn('a crash point is armed: this server SIGKILLs itself there (KEEL_CRASH_AT)', { crashAt });
    const needApproval = [...config.environments.values()].filter((env) => env.policy.requiresApproval);
    if (needApproval.length > 0 && approvalKeys.length === 0) {
      logger.warn('environments require approval but no --approval-key was given: they cannot be deployed', {
        environments: needApproval.map((env) => env.name),
      });
    }
    return {
      tools: createDeployServerTools({
        config,
        store: stateStore('deploy'),
        approvalKeys,
        // Chaos runs name a crash point; unset, nothing changes.
        ...(crashAt === undefined ? {} : { crashAt }),
      }),
    };
  },
});
process.exit(code);

function findConfig(root: string): string {
  for (const name of defaultConfigNames) {
    const candidate = path.join(root, name);
    if (existsSync(candidate)) return candidate;
  }
  throw new KeelError(
    'NOT_FOUND',
    `no deploy config in '${root}' (looked for ${defaultConfigNames.join(', ')})`,
    {
      hint: 'Pass --config FILE, or write keel.deploy.yaml in the project root (see the README for its format).',
    },
  );
}
