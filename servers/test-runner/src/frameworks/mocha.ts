import { writeFile } from 'node:fs/promises';
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
import type { FrameworkAdapter, LoadError, PlanContext, Selection, TestResult } from './types.js';

interface MochaTest {
  title: string;
  fullTitle: string;
  file?: string;
  duration?: number;
  err: { message?: string; stack?: string; expected?: unknown; actual?: unknown };
}

interface MochaReport {
  tests: MochaTest[];
  pending: MochaTest[];
  failures: MochaTest[];
  passes: MochaTest[];
}

async function baseArgs(selection: Selection, context: PlanContext, reporter: string[]): Promise<string[]> {
  const { project, scratchDir } = context;
  const runner = await requireNodePackage(project, 'mocha', 'mocha');
  const args = [
    ...(project.launcher === undefined ? [runner.bin] : project.launcher.slice(1)),
    ...reporter,
    '--no-color',
  ];
  if (selection.files.length > 0) {
    // mocha adds command-line files to the config's `spec` list; to run only the chosen files, use
    // a copy of a JSON config without `spec`. Other config formats cannot be rewritten safely, so
    // their spec files run too.
    const rcPath = path.join(project.dir, '.mocharc.json');
    const rc = await readJson(rcPath);
    if (rc !== undefined) {
      delete rc['spec'];
      const derived = path.join(scratchDir, 'mocharc.json');
      await writeFile(derived, JSON.stringify(rc));
      args.push(bound('--config', derived));
    }
  }
  const pattern =
    selection.exactNames === undefined
      ? selection.testNamePattern
      : `^(?:${selection.exactNames.map((n) => escapeRegExp(n.name)).join('|')})$`;
  if (pattern !== undefined) args.push(bound('--grep', pattern));
  if (selection.files.length > 0) args.push('--', ...selection.files);
  return args;
}

/** mocha through its JSON reporter, written to a file so test output cannot corrupt it. */
export const mochaAdapter: FrameworkAdapter = {
  name: 'mocha',
  reporter: 'json (--reporter-option output=FILE)',
  async planRun(selection, context) {
    const report = path.join(context.scratchDir, 'mocha.json');
    const args = await baseArgs(selection, context, [
      '--reporter=json',
      bound('--reporter-option', `output=${report}`),
    ]);
    return { command: context.project.launcher?.[0] ?? context.nodePath, args, env: {}, envAllowlist: [] };
  },
  async parseRun(process, { project, scratchDir }) {
    const report = (await readJson(path.join(scratchDir, 'mocha.json'))) as MochaReport | undefined;
    if (report === undefined) {
      if (/No test files found/i.test(process.stderr))
        return { reportFound: true, tests: [], loadErrors: [], noTestsFound: true };
      const loadErrors: LoadError[] = [];
      const crash = /Exception during run: ([^\n]*)/.exec(process.stderr);
      if (crash !== null) {
        const where = firstProjectFrame(process.stderr, project.dir);
        loadErrors.push({
          ...(where === undefined ? {} : { file: where.file }),
          message: clip(crash[1]!),
          ...stackOf(process.stderr, project.dir),
        });
      }
      return { reportFound: false, tests: [], loadErrors };
    }
    const failed = new Set(report.failures.map((t) => t.fullTitle + '\0' + (t.file ?? '')));
    const pending = new Set(report.pending.map((t) => t.fullTitle + '\0' + (t.file ?? '')));
    const tests: TestResult[] = [];
    const loadErrors: LoadError[] = [];
    for (const test of report.tests) {
      const key = test.fullTitle + '\0' + (test.file ?? '');
      const status = failed.has(key) ? 'failed' : pending.has(key) ? 'skipped' : 'passed';
      tests.push(toResult(test, status, project.dir));
    }
    // Hook failures ("before all" hook) are failures without a matching test entry.
    for (const failure of report.failures) {
      if (!report.tests.some((t) => t.fullTitle === failure.fullTitle && t.file === failure.file)) {
        if (/"(before|after) (all|each)" hook/.test(failure.fullTitle) || failure.file === undefined) {
          loadErrors.push({
            ...(failure.file === undefined ? {} : { file: failure.file }),
            message: clip(`${failure.fullTitle}: ${failure.err.message ?? ''}`),
            ...stackOf(failure.err.stack, project.dir),
          });
        } else tests.push(toResult(failure, 'failed', project.dir));
      }
    }
    return { reportFound: true, tests, loadErrors };
  },
  async planList(context) {
    const args = await baseArgs({ files: [] }, context, ['--dry-run', '--reporter=json']);
    return { command: context.project.launcher?.[0] ?? context.nodePath, args, env: {}, envAllowlist: [] };
  },
  async parseList(process) {
    try {
      const report = JSON.parse(process.stdout.slice(process.stdout.indexOf('{'))) as MochaReport;
      return {
        tests: report.tests.map((t) => ({
          name: t.fullTitle,
          ...(t.file === undefined ? {} : { file: t.file }),
        })),
        errors: [],
      };
    } catch {
      return { tests: [], errors: [{ message: clip(process.stderr || 'mocha --dry-run printed no JSON') }] };
    }
  },
  async version({ project }) {
    return (await findNodePackage(project.dir, 'mocha', 'mocha'))?.version;
  },
};

function toResult(test: MochaTest, status: TestResult['status'], projectDir: string): TestResult {
  const result: TestResult = { name: test.fullTitle, status };
  if (test.file !== undefined) result.file = test.file;
  if (typeof test.duration === 'number') result.durationMs = test.duration;
  if (status === 'failed') {
    const where = firstProjectFrame(test.err.stack, projectDir);
    const expected = showValue(test.err.expected);
    const actual = showValue(test.err.actual);
    result.failure = {
      message: clip((test.err.message ?? 'test failed').trim()),
      ...(expected === undefined ? {} : { expected }),
      ...(actual === undefined ? {} : { actual }),
      ...stackOf(test.err.stack, projectDir),
      ...(where === undefined ? {} : where),
    };
  }
  return result;
}

function stackOf(stack: string | undefined, projectDir: string): { stack?: string } {
  const trimmed = trimStack(stack, projectDir);
  return trimmed === undefined ? {} : { stack: trimmed };
}
