import { readFileSync } from 'node:fs';
import path from 'node:path';
import { KeelError } from '@keel/kit';
import { parse as parseYaml } from 'yaml';
import * as z from 'zod';

/** The file names looked for in the project root when `--config` is not given, in this order. */
export const defaultConfigNames = ['keel.deploy.yaml', 'keel.deploy.yml', 'keel.deploy.json'] as const;

const environmentName = /^[a-z][a-z0-9-]{0,31}$/;

const argv = z
  .array(z.string().min(1, 'must not be empty'))
  .min(1, 'needs the program and its arguments, e.g. [node, check.js]');

const timeoutMs = z.number().int().positive().max(600_000);

const healthSchema = z
  .object({
    http: z
      .url({ protocol: /^https?$/ })
      .optional()
      .describe('URL to GET'),
    expectStatus: z.number().int().min(100).max(599).default(200),
    command: argv.optional().describe('program and arguments, run without a shell; exit 0 is healthy'),
    timeoutMs: timeoutMs.default(10_000),
  })
  .strict()
  .superRefine((value, ctx) => {
    if ((value.http === undefined) === (value.command === undefined)) {
      ctx.addIssue({
        code: 'custom',
        message: 'give exactly one of http (a URL) or command (an argument array)',
      });
    }
  });

const directoryTarget = z
  .object({
    type: z.literal('directory'),
    path: z.string().min(1).describe('the deploy root: holds releases/ and the current symlink'),
  })
  .strict();

const commandTarget = z
  .object({
    type: z.literal('command'),
    deploy: argv.describe(
      'makes {releaseId} live from {build}; exit 0 means live, non-zero that nothing changed',
    ),
    rollback: argv.describe('makes the earlier release {releaseId} live again'),
    current: argv.optional().describe('prints the live release id (nothing when none)'),
    timeoutMs: timeoutMs.default(600_000),
  })
  .strict();

const environmentSchema = z
  .object({
    build: z.string().min(1).describe('the build output to deploy, relative to the project root'),
    target: z.discriminatedUnion('type', [directoryTarget, commandTarget]),
    policy: z
      .object({
        requiresApproval: z.boolean().default(false),
        keep: z.number().int().min(1).max(100).default(5),
        health: healthSchema.optional(),
        allowExternalLinks: z
          .boolean()
          .default(false)
          .describe('release build symlinks that point outside the build (listed as plan warnings)'),
      })
      .strict()
      .default({ requiresApproval: false, keep: 5, allowExternalLinks: false }),
    lock: z
      .object({ leaseSeconds: z.number().int().min(1).max(86_400).default(60) })
      .strict()
      .default({ leaseSeconds: 60 }),
  })
  .strict();

const configSchema = z
  .object({
    version: z.literal(1).default(1),
    environments: z.record(z.string(), environmentSchema).superRefine((value, ctx) => {
      const names = Object.keys(value);
      if (names.length === 0) ctx.addIssue({ code: 'custom', message: 'define at least one environment' });
      if (names.length > 50) ctx.addIssue({ code: 'custom', message: 'at most 50 environments' });
    }),
    maxFiles: z.number().int().positive().max(1_000_000).default(100_000),
  })
  .strict();

export type HealthConfig = z.output<typeof healthSchema>;
type EnvironmentInput = z.output<typeof environmentSchema>;

/** One environment with its paths resolved to absolute ones. */
export interface EnvironmentConfig {
  name: string;
  /** Absolute path of the build output. */
  build: string;
  /** As written in the config, for display. */
  buildAsWritten: string;
  target: DirectoryTargetConfig | CommandTargetConfig;
  policy: {
    requiresApproval: boolean;
    keep: number;
    health: HealthConfig | undefined;
    /** Present (true) only when the config allows build symlinks that leave the build. */
    allowExternalLinks?: true;
  };
  lock: { leaseSeconds: number };
}

export interface DirectoryTargetConfig {
  type: 'directory';
  /** Absolute path of the deploy root. */
  path: string;
  pathAsWritten: string;
}

/**
 * Commands (argument arrays, run without a shell in the project root) that do the deploying.
 * `{releaseId}`, `{previousRelease}`, `{build}` and `{environment}` in an argument are replaced, and
 * the same values are in KEEL_RELEASE_ID, KEEL_PREVIOUS_RELEASE, KEEL_BUILD_DIR, KEEL_ENVIRONMENT.
 */
export interface CommandTargetConfig {
  type: 'command';
  deploy: string[];
  rollback: string[];
  current: string[] | undefined;
  timeoutMs: number;
}

export interface DeployConfig {
  file: string;
  projectRoot: string;
  maxFiles: number;
  environments: ReadonlyMap<string, EnvironmentConfig>;
}

/**
 * Reads and validates a deploy config (YAML, or JSON by extension). Every mistake is reported at
 * once, each naming its field (`environments.staging.policy.keep: ...`). Relative paths in the file
 * resolve against the project root.
 */
export function loadDeployConfig(file: string, projectRoot: string): DeployConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new KeelError('NOT_FOUND', `deploy config '${file}' cannot be read: ${(error as Error).message}`, {
      hint: `Pass --config FILE, or put ${defaultConfigNames[0]} in the project root.`,
    });
  }
  return parseDeployConfig(text, file, projectRoot);
}

/** Validates config text; `file` names it in errors and picks JSON or YAML by its extension. */
export function parseDeployConfig(text: string, file: string, projectRoot: string): DeployConfig {
  let raw: unknown;
  try {
    raw = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new KeelError(
      'INVALID_ARGUMENT',
      `deploy config '${file}' is not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(error as Error).message}`,
      {
        hint: 'Fix the syntax at the position named.',
      },
    );
  }
  const parsed = configSchema.safeParse(raw);
  // Names are checked apart from the schema so a bad name is reported beside every other mistake.
  const environments = (raw as { environments?: unknown } | null)?.environments;
  const badNames =
    typeof environments === 'object' && environments !== null && !Array.isArray(environments)
      ? Object.keys(environments).filter((name) => !environmentName.test(name))
      : [];
  if (!parsed.success || badNames.length > 0) {
    const problems = (parsed.error?.issues ?? []).map((issue) => {
      const field = issue.path.map(String).join('.') || '(top level)';
      return `${field}: ${issue.message}`;
    });
    for (const name of badNames) {
      problems.push(
        `environments.${name}: an environment name is lowercase letters, digits and dashes, starting with a letter (at most 32)`,
      );
    }
    throw new KeelError(
      'INVALID_ARGUMENT',
      `deploy config '${file}' is invalid:\n  ${problems.join('\n  ')}`,
      {
        hint: 'See the config format in the @keel/server-deploy README.',
        details: { problems },
      },
    );
  }
  const resolved = new Map<string, EnvironmentConfig>();
  for (const [name, env] of Object.entries(parsed.data.environments)) {
    resolved.set(name, resolveEnvironment(name, env, projectRoot));
  }
  return { file, projectRoot, maxFiles: parsed.data.maxFiles, environments: resolved };
}

function resolveEnvironment(name: string, env: EnvironmentInput, projectRoot: string): EnvironmentConfig {
  const build = path.resolve(projectRoot, env.build);
  const relative = path.relative(projectRoot, build);
  if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative)) {
    throw new KeelError(
      'INVALID_ARGUMENT',
      `deploy config: environments.${name}.build: '${env.build}' must be a directory inside the project root`,
      { hint: 'Give the build output relative to the project root, e.g. dist.' },
    );
  }
  let target: EnvironmentConfig['target'];
  if (env.target.type === 'directory') {
    const root = path.resolve(projectRoot, env.target.path);
    const fromBuild = path.relative(build, root);
    const toBuild = path.relative(root, build);
    if (!fromBuild.startsWith('..') || !toBuild.startsWith('..')) {
      throw new KeelError(
        'INVALID_ARGUMENT',
        `deploy config: environments.${name}.target.path: '${env.target.path}' overlaps the build directory`,
        {
          hint: 'Deploy to a directory outside the build output, and keep the build outside the deploy root.',
        },
      );
    }
    target = { type: 'directory', path: root, pathAsWritten: env.target.path };
  } else {
    target = {
      type: 'command',
      deploy: env.target.deploy,
      rollback: env.target.rollback,
      current: env.target.current,
      timeoutMs: env.target.timeoutMs,
    };
  }
  return {
    name,
    build,
    buildAsWritten: env.build,
    target,
    policy: {
      requiresApproval: env.policy.requiresApproval,
      keep: env.policy.keep,
      health: env.policy.health,
      // Only when set, so configs without it keep their hash (and their plans stay valid).
      ...(env.policy.allowExternalLinks ? { allowExternalLinks: true as const } : {}),
    },
    lock: { leaseSeconds: env.lock.leaseSeconds },
  };
}
