import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { KeelError } from '@keel/kit';
import { readText } from './common.js';
import { junitResults } from './junit.js';
import { parseTap, tapResults } from './tap.js';
import type { FrameworkAdapter, ParsedRun, PlanContext, RawProcess } from './types.js';

/** How a command project's output is read. `auto`: TAP when it prints TAP, else the exit code alone. */
export const commandFormats = ['auto', 'tap', 'junit', 'text'] as const;
export type CommandFormat = (typeof commandFormats)[number];

/** A test command run as it is: the project's `npm test`, or one a person declared. */
export interface CommandSpec {
  argv: readonly string[];
  format: CommandFormat;
  /** A JUnit XML file the command writes, relative to the project (format junit). */
  report?: string;
}

function specOf(context: PlanContext): CommandSpec {
  const spec = context.project.command;
  if (spec === undefined) throw new KeelError('INTERNAL', `project '${context.project.id}' has no command`);
  return spec;
}

function reportPath(context: PlanContext, spec: CommandSpec): string | undefined {
  return spec.report === undefined ? undefined : path.resolve(context.project.dir, spec.report);
}

/**
 * A project whose tests are a command: it runs whole, its exit code decides when nothing finer can
 * be read, and its failures are parsed when it prints TAP or writes JUnit XML.
 */
export const commandAdapter: FrameworkAdapter = {
  name: 'command',
  reporter: 'the command’s own output: TAP or JUnit XML when it gives them, else its exit code',
  async planRun(selection, context) {
    const spec = specOf(context);
    if (
      selection.files.length > 0 ||
      selection.testNamePattern !== undefined ||
      selection.exactNames !== undefined
    ) {
      throw new KeelError(
        'INVALID_ARGUMENT',
        `project '${context.project.id}' runs the command ${spec.argv.join(' ')} as a whole; it cannot select files or tests`,
        { hint: 'Call run_tests with only the project.' },
      );
    }
    const [command, ...args] = spec.argv;
    return { command: command!, args, env: {}, envAllowlist: [] };
  },
  async beforeRun(context) {
    // A report left by an earlier run must never be read as this one's.
    const report = reportPath(context, specOf(context));
    if (report !== undefined) await rm(report, { force: true });
  },
  async parseRun(process, context) {
    const spec = specOf(context);
    const report = reportPath(context, spec);
    if (spec.format === 'junit') {
      const xml = report === undefined ? xmlIn(process.stdout) : await readReport(report);
      if (xml === undefined) return { reportFound: false, tests: [], loadErrors: [] };
      return junitResults(xml, context.project.dir);
    }
    if (spec.format === 'tap' || spec.format === 'auto') {
      const tap = parseTap(process.stdout);
      if (spec.format === 'tap' || (tap.found && tap.points.length > 0))
        return tapResults(tap, {
          projectDir: context.project.dir,
          exitCode: process.exitCode,
          stderr: process.stderr,
        });
    }
    return byExitCode(process, spec);
  },
  async version() {
    return undefined;
  },
};

async function readReport(file: string): Promise<string | undefined> {
  const info = await stat(file).catch(() => undefined);
  return info?.isFile() === true ? await readText(file) : undefined;
}

function xmlIn(stdout: string): string | undefined {
  const start = stdout.search(/<\?xml|<testsuites?\b/);
  return start === -1 ? undefined : stdout.slice(start);
}

/** Output that is not TAP or JUnit: one test, the command, passed or failed by its exit code. */
function byExitCode(process: RawProcess, spec: CommandSpec): ParsedRun {
  const name = spec.argv.join(' ');
  if (process.exitCode === 0)
    return { reportFound: true, tests: [{ name, status: 'passed' }], loadErrors: [] };
  if (process.exitCode === null) return { reportFound: false, tests: [], loadErrors: [] };
  const output = process.stderr.trim() === '' ? process.stdout : process.stderr;
  const tail = output.trimEnd().split('\n').slice(-20).join('\n');
  return {
    reportFound: true,
    tests: [
      {
        name,
        status: 'failed',
        failure: { message: `exited with code ${process.exitCode}${tail === '' ? '' : `\n${tail}`}` },
      },
    ],
    loadErrors: [],
  };
}
