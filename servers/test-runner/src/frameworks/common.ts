import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { KeelError } from '@keel/kit';
import type { Project } from './types.js';

const maxDetailChars = 4000;

/** Cuts a message or value to a size a model can read; the full text stays in the run's log. */
export function clip(text: string, max = maxDetailChars): string {
  return text.length <= max ? text : `${text.slice(0, max)}… [${text.length - max} more chars]`;
}

/** Renders an expected/actual value from a report: strings as they are, anything else as JSON. */
export function showValue(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string') return clip(value);
  try {
    // JSON.stringify gives undefined for functions and symbols; their String() form is what to show.
    // oxlint-disable-next-line typescript/no-base-to-string -- only non-JSON values reach String()
    return clip(JSON.stringify(value) ?? String(value));
  } catch {
    // Cyclic or BigInt-holding values: a best-effort rendering beats none.
    // oxlint-disable-next-line typescript/no-base-to-string -- deliberate fallback for unserialisable values
    return clip(String(value));
  }
}

export interface InstalledPackage {
  dir: string;
  version: string;
  bin: string;
}

/**
 * Finds a JavaScript test runner the way Node would from the project (walking up node_modules), and
 * its bin script, so it runs as `node <script>` with no shell shim in between.
 */
export async function findNodePackage(
  fromDir: string,
  name: string,
  binName: string,
): Promise<InstalledPackage | undefined> {
  let dir = fromDir;
  for (;;) {
    const candidate = path.join(dir, 'node_modules', name);
    const manifest = await readJson(path.join(candidate, 'package.json'));
    if (manifest !== undefined) {
      const bin = manifest['bin'];
      const rel = typeof bin === 'string' ? bin : (bin as Record<string, string> | undefined)?.[binName];
      if (typeof rel === 'string') {
        const version = manifest['version'];
        return {
          dir: candidate,
          version: typeof version === 'string' ? version : '',
          bin: path.join(candidate, rel),
        };
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

export async function requireNodePackage(project: Project, name: string, binName: string) {
  const found = await findNodePackage(project.dir, name, binName);
  if (found === undefined) {
    throw new KeelError('UNAVAILABLE', `${name} is not installed for project '${project.id}'`, {
      hint: `Install the project's dependencies (e.g. npm install) in ${project.displayDir}, then run again.`,
      retryable: false,
    });
  }
  return found;
}

export async function readJson(file: string): Promise<Record<string, unknown> | undefined> {
  try {
    const parsed: unknown = JSON.parse(await readFile(file, 'utf8'));
    return parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export async function readText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** Escapes text for use inside a regular expression (names become exact filters). */
export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

const frameLine = /^\s*at\s/;

/**
 * Keeps the message and the stack frames that point into the project, dropping the runner's own
 * frames (node_modules, node internals): those are what a fix needs, the rest is noise.
 */
export function trimStack(stack: string | undefined, projectDir: string): string | undefined {
  if (stack === undefined || stack === '') return undefined;
  const lines = stack.split('\n');
  const kept: string[] = [];
  for (const line of lines) {
    if (!frameLine.test(line)) {
      if (kept.length < 12) kept.push(line);
      continue;
    }
    if (line.includes('node_modules') || line.includes('node:internal')) continue;
    // Frames inside the project: absolute under it, or relative (mocha prints `test/x.spec.js:9:12`).
    if (!line.includes(projectDir) && !/\((?!node:)[^/(\s][^():]*:\d+:\d+\)/.test(line)) continue;
    kept.push(line.replaceAll(`${projectDir}${path.sep}`, '').replaceAll('file://', ''));
  }
  return clip(kept.join('\n').trimEnd());
}

/** The first stack frame inside the project (not node_modules): where the assertion failed. */
export function firstProjectFrame(
  stack: string | undefined,
  projectDir: string,
): { file: string; line: number } | undefined {
  if (stack === undefined) return undefined;
  const pattern = /(?:file:\/\/)?(\/[^\s():]+):(\d+):(\d+)/g;
  for (const match of stack.matchAll(pattern)) {
    let file = match[1]!;
    if (!path.isAbsolute(file)) file = path.join(projectDir, file);
    if (file.includes(`${path.sep}node_modules${path.sep}`)) continue;
    if (!file.startsWith(`${projectDir}${path.sep}`)) continue;
    return { file, line: Number(match[2]) };
  }
  // Stacks with project-relative frames (mocha prints `test/x.spec.js:9:12`).
  for (const match of stack.matchAll(/\(([^\s()/][^\s():]*):(\d+):(\d+)\)/g)) {
    const file = path.join(projectDir, match[1]!);
    if (file.includes(`${path.sep}node_modules${path.sep}`) || match[1]!.startsWith('node:')) continue;
    return { file, line: Number(match[2]) };
  }
  return undefined;
}

/** `-X=value` as one argv element, so a value can never be read as another option. */
export function bound(option: string, value: string): string {
  return `${option}=${value}`;
}

export function asArray(value: unknown): unknown[] {
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}
