import { access } from 'node:fs/promises';
import path from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { asArray, clip, readText } from './common.js';
import type { FrameworkAdapter, LoadError, PlanContext, TestResult } from './types.js';

const envAllowlist = ['PYENV_ROOT', 'PYENV_VERSION', 'VIRTUAL_ENV'] as const;

async function python(context: PlanContext): Promise<string[]> {
  if (context.project.launcher !== undefined) return [...context.project.launcher];
  // A project virtualenv wins over the interpreter on PATH, as it would for a person running it.
  for (const venv of ['.venv', 'venv']) {
    const candidate = path.join(context.project.dir, venv, 'bin', 'python');
    try {
      await access(candidate);
      return [candidate, '-m', 'pytest'];
    } catch {
      // Not there.
    }
  }
  return ['python3', '-m', 'pytest'];
}

interface JUnitCase {
  '@_classname'?: string;
  '@_name': string;
  '@_file'?: string;
  '@_line'?: string;
  '@_time'?: string;
  failure?: unknown;
  error?: unknown;
  skipped?: unknown;
}

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  textNodeName: '#text',
  parseTagValue: false,
  htmlEntities: true,
});

/** pytest through its JUnit XML report (xunit1 flavour, which carries file and line per test). */
export const pytestAdapter: FrameworkAdapter = {
  name: 'pytest',
  reporter: 'JUnit XML (--junitxml, junit_family=xunit1)',
  async planRun(selection, context) {
    const [command, ...lead] = await python(context);
    const report = path.join(context.scratchDir, 'pytest.xml');
    const args = [
      ...lead,
      '-p',
      'no:cacheprovider',
      `--junitxml=${report}`,
      '-o',
      'junit_family=xunit1',
      '-q',
      '--color=no',
    ];
    if (selection.exactNames !== undefined) {
      // Node ids select exactly; they are positional like files.
      args.push('--', ...selection.exactNames.map((n) => n.name));
    } else {
      // `-kEXPR` in one element: pytest parses the expression itself (no eval), and it cannot become an option.
      if (selection.testNamePattern !== undefined) args.push(`-k${selection.testNamePattern}`);
      if (selection.files.length > 0) args.push('--', ...selection.files);
    }
    return {
      command: command!,
      args,
      env: { PYTHONDONTWRITEBYTECODE: '1' },
      envAllowlist,
    };
  },
  async parseRun(process, { project, scratchDir }) {
    const xml = await readText(path.join(scratchDir, 'pytest.xml'));
    if (xml === undefined) return { reportFound: false, tests: [], loadErrors: [] };
    const doc = parser.parse(xml) as { testsuites?: { testsuite?: unknown }; testsuite?: unknown };
    const suites = asArray(doc.testsuites?.testsuite ?? doc.testsuite) as Array<{ testcase?: unknown }>;
    const tests: TestResult[] = [];
    const loadErrors: LoadError[] = [];
    for (const suite of suites) {
      for (const tc of asArray(suite.testcase) as JUnitCase[]) {
        const file = tc['@_file'] === undefined ? undefined : path.resolve(project.dir, tc['@_file']);
        const error = first(tc.error);
        // A collection error is reported as an <error> on a "test" named after the module.
        if (error !== undefined && (error.message === 'collection failure' || tc['@_classname'] === '')) {
          loadErrors.push({
            ...(file === undefined ? {} : { file }),
            message: clip(lastLines(error.text, 12)),
          });
          continue;
        }
        const failure = first(tc.failure) ?? error;
        const skipped = tc.skipped !== undefined;
        const nodeId = nodeIdOf(tc);
        const result: TestResult = {
          name: nodeId,
          status: failure !== undefined ? 'failed' : skipped ? 'skipped' : 'passed',
          selector: nodeId,
        };
        if (file !== undefined) result.file = file;
        // xunit1 lines are 0-based def lines.
        if (tc['@_line'] !== undefined) result.line = Number(tc['@_line']) + 1;
        if (tc['@_time'] !== undefined) result.durationMs = Math.round(Number(tc['@_time']) * 1000);
        if (failure !== undefined)
          result.failure = describeFailure(failure, project.dir, error !== undefined && failure === error);
        tests.push(result);
      }
    }
    return { reportFound: true, tests, loadErrors, noTestsFound: process.exitCode === 5 };
  },
  async planList(context) {
    const [command, ...lead] = await python(context);
    return {
      command: command!,
      args: [...lead, '-p', 'no:cacheprovider', '--collect-only', '-q', '--color=no'],
      env: { PYTHONDONTWRITEBYTECODE: '1' },
      envAllowlist,
    };
  },
  async parseList(process, { project }) {
    const tests = [];
    const errors: LoadError[] = [];
    for (const line of process.stdout.split('\n')) {
      const match = /^(\S+?\.py)::(\S.*)$/.exec(line.trim());
      if (match !== null) tests.push({ name: line.trim(), file: path.resolve(project.dir, match[1]!) });
      const error = /^ERROR (\S+)/.exec(line.trim());
      if (error !== null)
        errors.push({
          file: path.resolve(project.dir, error[1]!),
          message: `collection failed: ${line.trim()}`,
        });
    }
    return { tests, errors };
  },
  async version(context, run) {
    const [command, ...lead] = await python(context);
    const out = await run(command!, [...lead, '--version'], context.project.dir);
    return /pytest ([\w.]+)/.exec(out.stdout + out.stderr)?.[1];
  },
};

function first(value: unknown): { message?: string; text: string } | undefined {
  if (value === undefined) return undefined;
  const item = asArray(value)[0];
  if (typeof item === 'string') return { text: item };
  const node = item as Record<string, unknown>;
  return {
    ...(typeof node['@_message'] === 'string' ? { message: node['@_message'] } : {}),
    text: typeof node['#text'] === 'string' || typeof node['#text'] === 'number' ? String(node['#text']) : '',
  };
}

function nodeIdOf(tc: JUnitCase): string {
  const file = tc['@_file'];
  const classname = tc['@_classname'] ?? '';
  if (file === undefined) return `${classname}::${tc['@_name']}`;
  // classname is the module path plus any classes: keep the classes.
  const module = file.replace(/\.py$/, '').replaceAll('/', '.');
  const classes = classname.startsWith(module) ? classname.slice(module.length).replace(/^\./, '') : '';
  return [file, ...(classes === '' ? [] : classes.split('.')), tc['@_name']].join('::');
}

function lastLines(text: string, count: number): string {
  return text.trimEnd().split('\n').slice(-count).join('\n');
}

/**
 * pytest's failure text is its traceback; the last `path:line:` is where the assertion failed, and
 * a rewritten `assert A == B` names the actual (left) and expected (right) values.
 */
function describeFailure(
  failure: { message?: string; text: string },
  projectDir: string,
  isError: boolean,
): NonNullable<TestResult['failure']> {
  const text = failure.text;
  const locations = [...text.matchAll(/^([^\s:][^:\n]*\.py):(\d+): /gm)];
  const last = locations.at(-1);
  const message = (
    failure.message ??
    text.split('\n').find((l) => l.startsWith('E ')) ??
    'test failed'
  ).trim();
  const result: NonNullable<TestResult['failure']> = {
    message: clip(isError ? `error in setup or teardown: ${message}` : message),
    stack: clip(lastLines(text, 30)),
  };
  const compare = /^E\s+assert (.+?) == (.+)$/m.exec(text);
  if (compare !== null) {
    result.actual = clip(compare[1]!);
    result.expected = clip(compare[2]!);
  }
  if (last !== undefined) {
    result.file = path.resolve(projectDir, last[1]!);
    result.line = Number(last[2]);
  }
  return result;
}
