import { readFileSync, realpathSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { canonicalJson, KeelError, sha256Hex } from '@keel/kit/core';
import { configSchema, type KeelConfig } from './schema.js';
import type { ReasoningEffort } from '../models/model.js';
import { minAnswerTokens, thinkingBudgets } from '../models/reasoning.js';

/** A validated config, its directory (relative paths resolve against it) and its hash. */
export interface LoadedConfig {
  config: KeelConfig;
  file: string;
  dir: string;
  /**
   * sha256 over `parts`: the validated config and the prompt files it names, recorded with every
   * task; a resume under another one stops unless accepted.
   */
  hash: string;
  /** A hash per part: each top-level config key, and `prompt FILE` per prompt file (its bytes). */
  parts: Record<string, string>;
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

const isRecord = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

/**
 * Names that must point at something else in the config (an agent's model and servers, a model's
 * price), checked on the raw value wherever its parts are well-formed: a config with a shape
 * mistake still gets its dangling names reported in the same go.
 */
function crossReferenceProblems(value: unknown): string[] {
  const config = isRecord(value) ? value : {};
  const defaulted = (key: string, fallback: Record<string, unknown>) =>
    config[key] === undefined ? fallback : isRecord(config[key]) ? config[key] : undefined;
  const models = defaulted('models', { playbook: { provider: 'playbook' } });
  const prices = defaulted('prices', {});
  const servers = isRecord(config['servers']) ? config['servers'] : undefined;
  const agents = isRecord(config['agents']) ? config['agents'] : {};
  const problems: string[] = [];
  for (const [role, agent] of Object.entries(agents)) {
    if (!isRecord(agent)) continue;
    if (models !== undefined && typeof agent['model'] === 'string' && !(agent['model'] in models))
      problems.push(
        `agents.${role}.model: '${agent['model']}' is not a key of models (${Object.keys(models).join(', ')})`,
      );
    const model = models?.[agent['model'] as string];
    const effort = agent['reasoningEffort'];
    if (
      isRecord(model) &&
      model['provider'] === 'anthropic' &&
      typeof effort === 'string' &&
      effort in thinkingBudgets
    ) {
      const maxTokens = typeof agent['maxTokens'] === 'number' ? agent['maxTokens'] : 4096;
      const needed = thinkingBudgets[effort as ReasoningEffort] + minAnswerTokens;
      if (maxTokens < needed)
        problems.push(
          `agents.${role}.maxTokens: ${maxTokens} leaves no room for reasoningEffort '${effort}' (Anthropic thinks within max_tokens: ${thinkingBudgets[effort as ReasoningEffort]} for thinking + ${minAnswerTokens} for the answer); set maxTokens to at least ${needed}, or a lower effort`,
        );
    }
    if (servers !== undefined && isRecord(agent['tools']))
      for (const server of Object.keys(agent['tools']))
        if (!(server in servers))
          problems.push(
            `agents.${role}.tools.${server}: no server '${server}' (servers: ${Object.keys(servers).join(', ')})`,
          );
  }
  if (models !== undefined && prices !== undefined)
    for (const [name, model] of Object.entries(models))
      if (
        isRecord(model) &&
        model['provider'] !== 'playbook' &&
        typeof model['model'] === 'string' &&
        !(model['model'] in prices)
      )
        problems.push(
          `models.${name}: no price for '${model['model']}' in prices (money limits need one; 0 is allowed)`,
        );
  return problems;
}

/** Parses and validates a config value: every mistake, of shape or of cross-reference, in one report. */
export function parseConfig(value: unknown, file: string): KeelConfig {
  const parsed = configSchema.safeParse(value);
  const lines = [
    ...(parsed.success ? [] : formatIssues(parsed.error.issues)),
    ...crossReferenceProblems(value),
  ];
  if (lines.length > 0 || !parsed.success)
    throw new KeelError(
      'INVALID_ARGUMENT',
      `${file} has ${lines.length} mistake(s):\n  ${lines.join('\n  ')}`,
      {
        hint: 'fix the fields named above; `keel init DIR` writes a commented starter config showing every field',
        details: { issues: lines },
      },
    );
  return parsed.data;
}

/** Loads `keel.config.yaml` (or .json) and resolves its paths. */
export function loadConfig(file: string): LoadedConfig {
  const absolute = path.resolve(file);
  const config = parseConfig(readStructuredFile(absolute), path.basename(absolute));
  const dir = path.dirname(absolute);
  const parts = configParts(config, dir);
  return {
    config,
    file: absolute,
    dir,
    hash: sha256Hex(canonicalJson(parts)),
    parts,
    workspace: path.resolve(dir, config.workspace),
    stateDir:
      process.env['KEEL_STATE_DIR'] !== undefined
        ? path.resolve(dir, process.env['KEEL_STATE_DIR'])
        : config.stateDir !== undefined
          ? path.resolve(dir, config.stateDir)
          : defaultProjectStateDir(dir, process.env),
  };
}

/** The hash of each top-level key of a config, and of each prompt file it names (`prompt FILE`). */
export function configParts(config: KeelConfig, dir: string): Record<string, string> {
  const parts: Record<string, string> = {};
  for (const [key, value] of Object.entries(config)) parts[key] = sha256Hex(canonicalJson(value ?? null));
  for (const agent of Object.values(config.agents)) {
    if (agent?.prompt === undefined) continue;
    let bytes: Buffer | string;
    try {
      bytes = readFileSync(path.resolve(dir, agent.prompt));
    } catch {
      bytes = '(unreadable)';
    }
    parts[`prompt ${agent.prompt}`] = sha256Hex(bytes);
  }
  return parts;
}

/** The parts whose hash differs between two configs' `parts`, in order: what a resume names. */
export function changedParts(before: Record<string, string>, after: Record<string, string>): string[] {
  const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
  return keys.filter((key) => before[key] !== after[key]);
}

/**
 * Where a project keeps its state when its config names no `stateDir`: its own directory under the
 * user's state dir (`$XDG_STATE_HOME/keel/projects`, else `~/.local/state/keel/projects`), named
 * after the config's directory and a hash of its real path. Outside the workspace by construction,
 * so no tool sees the task store or the keys; stable across runs; two projects never share one.
 */
export function defaultProjectStateDir(configDir: string, env: NodeJS.ProcessEnv): string {
  let real = configDir;
  try {
    real = realpathSync(configDir);
  } catch {
    // A config dir that cannot be resolved keeps its absolute path: the same on every run.
  }
  const base =
    env['XDG_STATE_HOME'] !== undefined && path.isAbsolute(env['XDG_STATE_HOME'])
      ? env['XDG_STATE_HOME']
      : path.join(homedir(), '.local', 'state');
  const name = path.basename(real).replace(/[^\w.-]+/g, '_') || 'root';
  return path.join(base, 'keel', 'projects', `${name}-${sha256Hex(real).slice(0, 12)}`);
}
