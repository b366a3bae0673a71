import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bound, clip, escapeRegExp, firstProjectFrame, readText, showValue, trimStack } from './common.js';
import type { FrameworkAdapter, LoadError, TestResult } from './types.js';

const reporterPath = fileURLToPath(new URL('../reporters/nodeTestReporter.js', import.meta.url));

interface NodeTestLine {
  type: 'pass' | 'fail' | 'stderr';
  name?: string;
  nesting?: number;
  file?: string;
  line?: number;
  kind?: string;
  skip?: boolean;
  todo?: boolean;
  duration?: number;
  message?: string;
  failure?: { failureType?: string; message: string; stack?: string; expected?: unknown; actual?: unknown };
}

/** `node --test` through a reporter module of ours that writes one JSON line per test event. */
export const nodeTestAdapter: FrameworkAdapter = {
  name: 'node-test',
  reporter: 'custom --test-reporter (JSON lines of test events)',
  async planRun(selection, { project, scratchDir, nodePath }) {
    const report = path.join(scratchDir, 'node-test.jsonl');
    const args = [
      ...(project.launcher?.slice(1) ?? []),
      '--test',
      // spec to stdout for a readable log; ours to a file for the structured results.
      bound('--test-reporter', 'spec'),
      bound('--test-reporter-destination', 'stdout'),
      bound('--test-reporter', reporterPath),
      bound('--test-reporter-destination', report),
    ];
    const pattern =
      selection.exactNames === undefined
        ? selection.testNamePattern
        : `^(?:${selection.exactNames.map((n) => escapeRegExp(n.name.split(' > ').at(-1) ?? n.name)).join('|')})$`;
    if (pattern !== undefined) args.push(bound('--test-name-pattern', pattern));
    if (selection.files.length > 0) args.push('--', ...selection.files);
    return { command: project.launcher?.[0] ?? nodePath, args, env: {}, envAllowlist: [] };
  },
  async parseRun(_process, { project, scratchDir }) {
    const text = await readText(path.join(scratchDir, 'node-test.jsonl'));
    if (text === undefined) return { reportFound: false, tests: [], loadErrors: [] };
    const events: NodeTestLine[] = [];
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        events.push(JSON.parse(line) as NodeTestLine);
      } catch {
        // A partial last line from a killed run; the rest still counts.
      }
    }
    const stderrByFile = new Map<string, string>();
    for (const event of events) {
      if (event.type === 'stderr' && event.file !== undefined) {
        stderrByFile.set(event.file, (stderrByFile.get(event.file) ?? '') + (event.message ?? ''));
      }
    }
    const tests: TestResult[] = [];
    const loadErrors: LoadError[] = [];
    for (const event of events) {
      if (event.type === 'stderr') continue;
      const name = event.name ?? '';
      // A file that failed before reporting any test shows up as a failed "test" named after the file.
      if (event.type === 'fail' && event.file !== undefined && name === event.file && event.nesting === 0) {
        const stderr = stderrByFile.get(event.file);
        loadErrors.push({
          file: event.file,
          message: clip((stderr ?? event.failure?.message ?? 'file failed to run').trim()),
        });
        continue;
      }
      if (event.kind === 'suite') continue;
      const result: TestResult = {
        name,
        status: event.skip || event.todo ? 'skipped' : event.type === 'pass' ? 'passed' : 'failed',
      };
      if (event.file !== undefined) result.file = event.file;
      if (event.line !== undefined) result.line = event.line;
      if (event.duration !== undefined) result.durationMs = Math.round(event.duration);
      if (result.status === 'failed' && event.failure !== undefined) {
        const where = firstProjectFrame(event.failure.stack, project.dir);
        const expected = showValue(event.failure.expected);
        const actual = showValue(event.failure.actual);
        const stack = trimStack(event.failure.stack, project.dir);
        result.failure = {
          message: clip(event.failure.message.trim()),
          ...(expected === undefined ? {} : { expected }),
          ...(actual === undefined ? {} : { actual }),
          ...(stack === undefined ? {} : { stack }),
          ...(where === undefined ? {} : where),
        };
      }
      tests.push(result);
    }
    // Suites are reported after their children; prefix names with their suite path.
    return { reportFound: true, tests: withSuiteNames(events, tests), loadErrors };
  },
  async version() {
    return process.versions.node;
  },
};

/** node:test reports children before their suite; rebuild "suite > test" names from nesting. */
function withSuiteNames(events: readonly NodeTestLine[], tests: TestResult[]): TestResult[] {
  const paths: string[][] = [];
  const open: Array<{ nesting: number; members: number[] }> = [];
  for (const event of events) {
    if (event.type === 'stderr') continue;
    const nesting = event.nesting ?? 0;
    if (event.file !== undefined && event.name === event.file && nesting === 0 && event.type === 'fail')
      continue;
    if (event.kind !== 'suite') {
      paths.push([event.name ?? '']);
      open.push({ nesting, members: [paths.length - 1] });
      continue;
    }
    // The entries deeper than this suite, reported just before it, are its children.
    const members: number[] = [];
    while (open.length > 0 && open.at(-1)!.nesting > nesting) members.push(...open.pop()!.members);
    for (const member of members) paths[member]!.unshift(event.name ?? '');
    open.push({ nesting, members });
  }
  return tests.map((test, i) => ({ ...test, name: (paths[i] ?? [test.name]).join(' > ') }));
}
