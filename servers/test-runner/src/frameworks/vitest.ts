import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  bound,
  clip,
  firstProjectFrame,
  readJson,
  requireNodePackage,
  showValue,
  trimStack,
  escapeRegExp,
  findNodePackage,
} from './common.js';
import type { FrameworkAdapter, LoadError, TestResult } from './types.js';

const reporterPath = fileURLToPath(new URL('../reporters/vitestReporter.js', import.meta.url));

interface VitestError {
  message: string;
  stack?: string;
  expected?: unknown;
  actual?: unknown;
}

interface VitestReport {
  modules: Array<{
    file: string;
    errors: VitestError[];
    tests: Array<{
      fullName: string;
      line?: number;
      state: string;
      duration?: number;
      errors: VitestError[];
    }>;
  }>;
  unhandledErrors: VitestError[];
}

/** vitest through its reporter API (our reporter writes the task tree as JSON). */
export const vitestAdapter: FrameworkAdapter = {
  name: 'vitest',
  reporter: 'custom reporter (task tree as JSON, expected/actual included)',
  async planRun(selection, { project, scratchDir, nodePath }) {
    const runner = await requireNodePackage(project, 'vitest', 'vitest');
    const report = path.join(scratchDir, 'vitest.json');
    const args = [
      ...(project.launcher === undefined ? [runner.bin] : project.launcher.slice(1)),
      'run',
      // The default reporter keeps a readable log (and console output) next to our structured one.
      bound('--reporter', 'default'),
      bound('--reporter', reporterPath),
      '--passWithNoTests',
      '--color=false',
      '--watch=false',
    ];
    const pattern =
      selection.exactNames === undefined
        ? selection.testNamePattern
        : `^(?:${selection.exactNames.map((n) => escapeRegExp(n.name.replaceAll(' > ', ' '))).join('|')})$`;
    if (pattern !== undefined) args.push(bound('--testNamePattern', pattern));
    // Absolute real paths, so they cannot be mistaken for options (vitest ignores filters after `--`).
    args.push(...selection.files);
    return {
      command: project.launcher?.[0] ?? nodePath,
      args,
      env: { KEEL_TEST_REPORT: report },
      envAllowlist: [],
    };
  },
  async parseRun(_process, { project, scratchDir }) {
    const report = (await readJson(path.join(scratchDir, 'vitest.json'))) as VitestReport | undefined;
    if (report === undefined) return { reportFound: false, tests: [], loadErrors: [] };
    const tests: TestResult[] = [];
    const loadErrors: LoadError[] = [];
    for (const module of report.modules) {
      for (const error of module.errors) {
        loadErrors.push({ file: module.file, message: clip(error.message), ...stackOf(error, project.dir) });
      }
      for (const test of module.tests) {
        const status = test.state === 'passed' ? 'passed' : test.state === 'failed' ? 'failed' : 'skipped';
        const result: TestResult = { name: test.fullName, file: module.file, status };
        if (test.line !== undefined) result.line = test.line;
        if (test.duration !== undefined) result.durationMs = Math.round(test.duration);
        const error = test.errors[0];
        if (status === 'failed') {
          const where = firstProjectFrame(error?.stack, project.dir);
          const expected = showValue(error?.expected);
          const actual = showValue(error?.actual);
          const stack = trimStack(error?.stack, project.dir);
          result.failure = {
            message: clip(error?.message ?? 'test failed'),
            ...(expected === undefined ? {} : { expected }),
            ...(actual === undefined ? {} : { actual }),
            ...(stack === undefined ? {} : { stack }),
            ...(where === undefined ? {} : where),
          };
        }
        tests.push(result);
      }
    }
    for (const error of report.unhandledErrors) {
      loadErrors.push({ message: `unhandled error: ${clip(error.message)}`, ...stackOf(error, project.dir) });
    }
    return { reportFound: true, tests, loadErrors };
  },
  async planList({ project, nodePath }) {
    const runner = await requireNodePackage(project, 'vitest', 'vitest');
    return {
      command: project.launcher?.[0] ?? nodePath,
      args: [
        ...(project.launcher === undefined ? [runner.bin] : project.launcher.slice(1)),
        'list',
        '--json',
        '--color=false',
      ],
      env: {},
      envAllowlist: [],
    };
  },
  async parseList(process) {
    const start = process.stdout.indexOf('[');
    try {
      const parsed = JSON.parse(process.stdout.slice(start)) as Array<{
        name: string;
        file: string;
        location?: { line: number };
      }>;
      return {
        tests: parsed.map((t) => ({
          name: t.name,
          file: t.file,
          ...(t.location === undefined ? {} : { line: t.location.line }),
        })),
        errors: [],
      };
    } catch {
      return {
        tests: [],
        errors: [{ message: clip(process.stderr || process.stdout || 'vitest list printed no JSON') }],
      };
    }
  },
  async version({ project }) {
    return (await findNodePackage(project.dir, 'vitest', 'vitest'))?.version;
  },
};

function stackOf(error: VitestError, projectDir: string): { stack?: string } {
  const stack = trimStack(error.stack, projectDir);
  return stack === undefined ? {} : { stack };
}
