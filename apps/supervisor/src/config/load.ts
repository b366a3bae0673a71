import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { canonicalJson, KeelError, sha256Hex } from '@keel/kit';
import { configSchema, type KeelConfig } from './schema.js';

/** A validated config, its directory (relative paths resolve against it) and its hash. */
export interface LoadedConfig {
  config: KeelConfig;
  file: string;
  dir: string;
  /** sha256 of the canonical validated config: recorded with every task. */
  hash: string;
  workspace: string;
  stateDir: string;
}

/** Reads YAML (or JSON, which is YAML) and names the file on a syntax error. */
export function readStructuredFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new KeelError(
      'NOT_FOUND',
      `cannot read ${file}: ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`,
      {
        cause,
        hint: 'check the path; `keel init` writes a starter config',
      },
    );
  }
  try {
    return file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (cause) {
    throw new KeelError(
      'INVALID_ARGUMENT',
      `${file} is not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(cause as Error).message}`,
      {
        cause,
      },
    );
  }
}

/** One line per zod issue, each naming the field: `agents.coding.model: expected string`. */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => {
    const where = issue.path.length === 0 ? '(top level)' : issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys')
      return `${where}: unknown field(s) ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
    return `${where}: ${issue.message}`;
  });
}

/** Parses and validates a config value; cross-references are checked after the shape. */
export function parseConfig(value: unknown, file: string): KeelConfig {
  const parsed = configSchema.safeParse(value);
  if (!parsed.success) {
    const lines = formatIssues(parsed.error.issues);
    throw new KeelError(
      'INVALID_ARGUMENT',
      `${file} has ${lines.length} mistake(s):\n  ${lines.join('\n  ')}`,
      {
        hint: 'fix the fields named above; `keel init --force` writes a commented starter config',
        details: { issues: lines },
      },
    );
  }
  const config = parsed.data;
  const problems: string[] = [];
  for (const [role, agent] of Object.entries(config.agents)) {
    if (agent === undefined) continue;
    if (!(agent.model in config.models))
      problems.push(
        `agents.${role}.model: '${agent.model}' is not a key of models (${Object.keys(config.models).join(', ')})`,
      );
    for (const server of Object.keys(agent.tools))
      if (!(server in config.servers))
        problems.push(
          `agents.${role}.tools.${server}: no server '${server}' (servers: ${Object.keys(config.servers).join(', ')})`,
        );
  }
  for (const [name, model] of Object.entries(config.models))
    if (model.provider !== 'playbook' && !(model.model in config.prices))
      problems.push(
        `models.${name}: no price for '${model.model}' in prices (money limits need one; 0 is allowed)`,
      );
  if (problems.length > 0)
    throw new KeelError(
      'INVALID_ARGUMENT',
      `${file} has ${problems.length} mistake(s):\n  ${problems.join('\n  ')}`,
      {
        details: { issues: problems },
      },
    );
  return config;
}

/** Loads `keel.config.yaml` (or .json) and resolves its paths. */
export function loadConfig(file: string): LoadedConfig {
  const absolute = path.resolve(file);
  const config = parseConfig(readStructuredFile(absolute), path.basename(absolute));
  const dir = path.dirname(absolute);
  return {
    config,
    file: absolute,
    dir,
    hash: sha256Hex(canonicalJson(config)),
    workspace: path.resolve(dir, config.workspace),
    stateDir: path.resolve(dir, process.env['KEEL_STATE_DIR'] ?? config.stateDir),
  };
}
