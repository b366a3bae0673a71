import path from 'node:path';
import { KeelError } from '@keel/kit';
import { argumentsOf, scriptCommands } from '../projects/scripts.js';
import { findNodePackage, readJson, requireNodePackage } from './common.js';
import { parseTap, tapResults } from './tap.js';
import type { FrameworkAdapter, PlanContext } from './types.js';

/** tape's options that take a value; the other words after `tape` in a script are globs. */
const valueOptions = new Set(['-r', '--require', '-i', '--ignore', '--ignore-pattern']);

/**
 * How the project runs tape, read from its scripts: `tape 'test/**\/*.js'` (possibly behind nyc or
 * `npm run tests-only`) gives its options and globs; `node test` gives the entry file (left-pad);
 * otherwise tape's files under `test/`.
 */
export async function tapeInvocation(
  projectDir: string,
): Promise<{ options: string[]; globs: string[] } | { entry: string[] }> {
  const manifest = await readJson(path.join(projectDir, 'package.json'));
  const scripts = (manifest?.['scripts'] ?? {}) as Record<string, unknown>;
  const commands = scriptCommands(scripts);
  const words = argumentsOf(commands, 'tape');
  if (words !== undefined) {
    const options: string[] = [];
    const globs: string[] = [];
    for (let i = 0; i < words.length; i++) {
      const word = words[i]!;
      if (valueOptions.has(word) && words[i + 1] !== undefined) options.push(word, words[++i]!);
      else if (word.startsWith('-')) options.push(word);
      else globs.push(word);
    }
    if (globs.length > 0) return { options, globs };
  }
  const node = commands.find((c) => c[0] === 'node' && c.length > 1);
  if (node !== undefined) return { entry: node.slice(1) };
  return { options: [], globs: ['test/**/*.js'] };
}

async function plan(selectionFiles: readonly string[], context: PlanContext) {
  const { project, nodePath } = context;
  const runner = await requireNodePackage(project, 'tape', 'tape');
  const lead = project.launcher?.slice(1) ?? [];
  const command = project.launcher?.[0] ?? nodePath;
  const invocation = await tapeInvocation(project.dir);
  let args: string[];
  if (selectionFiles.length > 0) {
    const options = 'options' in invocation ? invocation.options : [];
    args = [...lead, runner.bin, ...options, '--', ...selectionFiles];
  } else if ('entry' in invocation) args = [...lead, ...invocation.entry];
  else args = [...lead, runner.bin, ...invocation.options, ...invocation.globs];
  return { command, args, env: {}, envAllowlist: [] };
}

/** tape through the TAP it prints: tests are the `# name` groups of assertions. */
export const tapeAdapter: FrameworkAdapter = {
  name: 'tape',
  reporter: 'TAP on stdout',
  async planRun(selection, context) {
    if (selection.testNamePattern !== undefined) {
      throw new KeelError(
        'INVALID_ARGUMENT',
        `tape cannot select tests by name (project '${context.project.id}')`,
        {
          hint: 'Pass files instead: tape runs whole files.',
        },
      );
    }
    // Failed tests are re-run through their files (from where their assertions failed); tape has no
    // name filter, so the other tests of those files run again too.
    return await plan(selection.files, context);
  },
  async parseRun(process, { project }) {
    return tapResults(parseTap(process.stdout), {
      projectDir: project.dir,
      exitCode: process.exitCode,
      stderr: process.stderr,
    });
  },
  async version({ project }) {
    return (await findNodePackage(project.dir, 'tape', 'tape'))?.version;
  },
};
