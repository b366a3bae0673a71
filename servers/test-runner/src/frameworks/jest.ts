import path from 'node:path';
import {
  bound,
  clip,
  escapeRegExp,
  findNodePackage,
  firstProjectFrame,
  readJson,
  requireNodePackage,
  showValue,
  trimStack,
} from './common.js';
import type { FrameworkAdapter, LoadError, TestResult } from './types.js';

interface JestReport {
  testResults: Array<{
    name: string;
    status: string;
    message: string;
    testExecError?: { message?: string; stack?: string };
    assertionResults: Array<{
      fullName: string;
      status: string;
      duration?: number | null;
      location?: { line: number; column: number } | null;
      failureMessages: string[];
      failureDetails: Array<{
        matcherResult?: { expected?: unknown; actual?: unknown; message?: string };
        message?: string;
        stack?: string;
      }>;
    }>;
  }>;
}

const ansi = /\u001b\[[0-9;]*m/g;

/** jest through its own `--json` report (with test locations). */
export const jestAdapter: FrameworkAdapter = {
  name: 'jest',
  reporter: '--json --testLocationInResults',
  async planRun(selection, { project, scratchDir, nodePath }) {
    const runner = await requireNodePackage(project, 'jest', 'jest');
    const report = path.join(scratchDir, 'jest.json');
    const args = [
      ...(project.launcher === undefined ? [runner.bin] : project.launcher.slice(1)),
      '--ci',
      '--json',
      bound('--outputFile', report),
      '--testLocationInResults',
      '--passWithNoTests',
      '--color=false',
      '--watchAll=false',
    ];
    const pattern =
      selection.exactNames === undefined
        ? selection.testNamePattern
        : `^(?:${selection.exactNames.map((n) => escapeRegExp(n.name)).join('|')})$`;
    if (pattern !== undefined) args.push(bound('--testNamePattern', pattern));
    if (selection.files.length > 0) args.push('--runTestsByPath', '--', ...selection.files);
    return { command: project.launcher?.[0] ?? nodePath, args, env: {}, envAllowlist: [] };
  },
  async parseRun(_process, { project, scratchDir }) {
    const report = (await readJson(path.join(scratchDir, 'jest.json'))) as JestReport | undefined;
    if (report === undefined) return { reportFound: false, tests: [], loadErrors: [] };
    const tests: TestResult[] = [];
    const loadErrors: LoadError[] = [];
    for (const suite of report.testResults) {
      if (
        suite.testExecError !== undefined ||
        (suite.status === 'failed' && suite.assertionResults.length === 0)
      ) {
        const message = suite.testExecError?.message ?? suite.message;
        loadErrors.push({
          file: suite.name,
          message: clip(message.replace(ansi, '').trim() || 'test suite failed to run'),
        });
      }
      for (const assertion of suite.assertionResults) {
        const status =
          assertion.status === 'passed' ? 'passed' : assertion.status === 'failed' ? 'failed' : 'skipped';
        const result: TestResult = { name: assertion.fullName, file: suite.name, status };
        if (assertion.location) result.line = assertion.location.line;
        if (typeof assertion.duration === 'number') result.durationMs = Math.round(assertion.duration);
        if (status === 'failed') {
          const raw = (assertion.failureMessages[0] ?? 'test failed').replace(ansi, '');
          const matcher = assertion.failureDetails[0]?.matcherResult;
          const firstFrame = raw.search(/\n\s+at /);
          const message = (matcher?.message ?? (firstFrame === -1 ? raw : raw.slice(0, firstFrame))).replace(
            ansi,
            '',
          );
          const where = firstProjectFrame(raw, project.dir);
          const expected = matcher === undefined ? undefined : showValue(matcher.expected);
          const actual = matcher === undefined ? undefined : showValue(matcher.actual);
          const stack = trimStack(raw, project.dir);
          result.failure = {
            message: clip(message.trim()),
            ...(expected === undefined ? {} : { expected }),
            ...(actual === undefined ? {} : { actual }),
            ...(stack === undefined ? {} : { stack }),
            ...(where === undefined ? {} : where),
          };
        }
        tests.push(result);
      }
    }
    return { reportFound: true, tests, loadErrors };
  },
  async planList({ project, nodePath }) {
    const runner = await requireNodePackage(project, 'jest', 'jest');
    return {
      command: project.launcher?.[0] ?? nodePath,
      args: [
        ...(project.launcher === undefined ? [runner.bin] : project.launcher.slice(1)),
        '--listTests',
        '--json',
        '--color=false',
      ],
      env: {},
      envAllowlist: [],
    };
  },
  async parseList(process) {
    // jest lists test files, not the tests inside them (that needs running them).
    try {
      const files = JSON.parse(process.stdout.slice(process.stdout.indexOf('['))) as string[];
      return { tests: files.sort().map((file) => ({ name: path.basename(file), file })), errors: [] };
    } catch {
      return { tests: [], errors: [{ message: clip(process.stderr || 'jest --listTests printed no JSON') }] };
    }
  },
  async version({ project }) {
    return (await findNodePackage(project.dir, 'jest', 'jest'))?.version;
  },
};
