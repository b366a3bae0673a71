import type { Dirent } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { PathJail } from '@keel/kit';
import type { CommandSpec } from '../frameworks/command.js';
import type { FrameworkName, Project } from '../frameworks/types.js';
import { argumentsOf, scriptCommands } from './scripts.js';

/**
 * A project declared by a person (config file or `--command`): a framework with an optional
 * launcher that replaces the template's program, or (framework `command`) a named test command.
 */
export interface ConfiguredProject {
  dir: string;
  framework: FrameworkName;
  launcher?: readonly string[];
  /** For framework `command`: the project's name (its id is `<dir>:<name>`) and what it runs. */
  name?: string;
  command?: CommandSpec;
}

/** Scripts that run other packages' tests (a monorepo root), which are projects of their own. */
const orchestrator =
  /\b(turbo|lerna|nx)\b|\s(-r|--recursive|--filter|-F|--workspaces?|-ws)\b|\bworkspaces?\s/;

const skipDirs = new Set([
  'node_modules',
  '.git',
  'target',
  'dist',
  'build',
  '__pycache__',
  '.venv',
  'venv',
  '.tox',
  '.pytest_cache',
  'vendor',
  'coverage',
  '.turbo',
  '.next',
  '.cache',
  '.hg',
  '.svn',
]);

export const detectLimits = { maxDepth: 8, maxDirs: 5000 } as const;

export interface Detection {
  projects: Project[];
  /** True when the walk hit its directory cap, so deeper projects may be missing. */
  capped: boolean;
}

/**
 * Finds the test projects under the jail's roots from their manifests and config files, several per
 * monorepo. The walk skips dependency and build directories and is capped, and a capped walk says so.
 */
export async function detectProjects(
  jail: PathJail,
  configured: readonly ConfiguredProject[] = [],
): Promise<Detection> {
  const projects: Project[] = [];
  let dirs = 0;
  let capped = false;
  const walk = async (dir: string, depth: number, pytestAbove: boolean): Promise<void> => {
    if (dirs >= detectLimits.maxDirs) {
      capped = true;
      return;
    }
    dirs++;
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    const names = new Set(entries.filter((e) => e.isFile()).map((e) => e.name));
    const found = await detectIn(dir, names, pytestAbove);
    for (const { framework, detectedBy, command } of found) {
      const project = makeProject(
        jail,
        dir,
        framework,
        detectedBy,
        command === undefined ? undefined : 'npm-test',
      );
      if (command !== undefined) project.command = command;
      projects.push(project);
    }
    if (depth >= detectLimits.maxDepth) return;
    const children = entries
      .filter((e) => e.isDirectory() && !skipDirs.has(e.name) && !e.name.startsWith('.'))
      .map((e) => e.name)
      .sort();
    for (const child of children) {
      await walk(
        path.join(dir, child),
        depth + 1,
        pytestAbove || found.some((f) => f.framework === 'pytest'),
      );
    }
  };
  for (const root of jail.roots) await walk(root, 0, false);

  for (const entry of configured) {
    const resolved = await jail.resolve(entry.dir);
    if (!resolved.ok || !resolved.value.exists) continue;
    const project = makeProject(jail, resolved.value.real, entry.framework, 'config file', entry.name);
    if (entry.launcher !== undefined) project.launcher = entry.launcher;
    if (entry.command !== undefined) project.command = entry.command;
    const at = projects.findIndex((p) => p.id === project.id);
    if (at === -1) projects.push(project);
    else projects[at] = project;
  }
  projects.sort((a, b) => a.id.localeCompare(b.id));
  return { projects, capped };
}

function makeProject(
  jail: PathJail,
  dir: string,
  framework: FrameworkName,
  detectedBy: string,
  name?: string,
): Project {
  const displayDir = jail.display(dir);
  return { id: `${displayDir}:${name ?? framework}`, framework, dir, displayDir, detectedBy };
}

interface Found {
  framework: FrameworkName;
  detectedBy: string;
  command?: CommandSpec;
}

async function detectIn(dir: string, files: ReadonlySet<string>, pytestAbove: boolean): Promise<Found[]> {
  const found: Found[] = [];
  let npmTest: Found | undefined;
  const configFile = (prefix: string) => [...files].find((f) => f.startsWith(prefix));
  if (files.has('package.json')) {
    const manifest = await readJsonObject(path.join(dir, 'package.json'));
    const deps = { ...asRecord(manifest?.['dependencies']), ...asRecord(manifest?.['devDependencies']) };
    const testEntry = asRecord(manifest?.['scripts'])['test'];
    const testScript = typeof testEntry === 'string' ? testEntry : '';
    // A config file or the test script names the project's runner. A dependency alone (jest or mocha
    // kept for fixtures) is not a project: it counts only for a real test script that names no
    // runner itself (`pnpm run test:unit`).
    const named: Array<{ framework: FrameworkName; detectedBy: string }> = [];
    const byDependency: FrameworkName[] = [];
    for (const [framework, configPrefixes, extra] of [
      ['vitest', ['vitest.config.', 'vitest.workspace.'], false],
      ['jest', ['jest.config.'], manifest?.['jest'] !== undefined],
      ['mocha', ['.mocharc'], false],
    ] as const) {
      const config = configPrefixes.map(configFile).find((file) => file !== undefined);
      if (config !== undefined) named.push({ framework, detectedBy: config });
      else if (extra || new RegExp(`\\b${framework}\\b`).test(testScript))
        named.push({ framework, detectedBy: 'package.json' });
      else if (framework in deps) byDependency.push(framework);
    }
    if (/\bnode\b(\s+--?[\w-]+(=\S+)?)*\s+--test\b/.test(testScript))
      named.push({ framework: 'node-test', detectedBy: 'package.json' });
    // tape and node-tap are often behind `npm run tests-only` and nyc: follow the scripts.
    const commands = scriptCommands(asRecord(manifest?.['scripts']));
    for (const [framework, program] of [
      ['tape', 'tape'],
      ['node-tap', 'tap'],
    ] as const) {
      if (argumentsOf(commands, program) !== undefined) named.push({ framework, detectedBy: 'package.json' });
      else if (program in deps) byDependency.push(framework);
    }
    found.push(...named);
    const delegatingScript = testScript.trim() !== '' && !/no test specified/.test(testScript);
    if (named.length === 0 && delegatingScript)
      for (const framework of byDependency) found.push({ framework, detectedBy: 'package.json' });
    // A test script in no framework this server knows still runs as `npm test`, unless it only runs
    // the workspace's packages (each found on its own).
    if (found.length === 0 && delegatingScript && !orchestrator.test(` ${testScript}`))
      npmTest = {
        framework: 'command',
        detectedBy: 'package.json scripts.test',
        command: { argv: ['npm', 'test'], format: 'auto' },
      };
  }
  if (files.has('pytest.ini')) found.push({ framework: 'pytest', detectedBy: 'pytest.ini' });
  else if (
    files.has('pyproject.toml') &&
    (await fileMatches(path.join(dir, 'pyproject.toml'), /^\[tool\.pytest/m))
  )
    found.push({ framework: 'pytest', detectedBy: 'pyproject.toml' });
  else if (files.has('setup.cfg') && (await fileMatches(path.join(dir, 'setup.cfg'), /^\[tool:pytest\]/m)))
    found.push({ framework: 'pytest', detectedBy: 'setup.cfg' });
  else if (files.has('tox.ini') && (await fileMatches(path.join(dir, 'tox.ini'), /^\[pytest\]/m)))
    found.push({ framework: 'pytest', detectedBy: 'tox.ini' });
  else if (files.has('conftest.py') && !pytestAbove)
    found.push({ framework: 'pytest', detectedBy: 'conftest.py' });
  if (files.has('go.mod')) found.push({ framework: 'go', detectedBy: 'go.mod' });
  if (files.has('Cargo.toml') && (await fileMatches(path.join(dir, 'Cargo.toml'), /^\[package\]/m)))
    found.push({ framework: 'cargo', detectedBy: 'Cargo.toml' });
  if (found.length === 0 && npmTest !== undefined) found.push(npmTest);
  return found;
}

async function readJsonObject(file: string): Promise<Record<string, unknown> | undefined> {
  try {
    const parsed: unknown = JSON.parse(await readFile(file, 'utf8'));
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function asRecord(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

async function fileMatches(file: string, pattern: RegExp): Promise<boolean> {
  try {
    return pattern.test(await readFile(file, 'utf8'));
  } catch {
    return false;
  }
}
