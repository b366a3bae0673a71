import path from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { asArray, clip, firstProjectFrame, trimStack } from './common.js';
import type { ParsedRun, TestResult } from './types.js';

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  textNodeName: '#text',
  parseTagValue: false,
  htmlEntities: true,
});

interface Suite {
  testsuite?: unknown;
  testcase?: unknown;
}

/**
 * Test results from a JUnit XML report as most tools write it (mocha's xunit, jest-junit, gotestsum,
 * Surefire): `testsuites` > `testsuite` (nested too) > `testcase` with `failure`, `error` or
 * `skipped`. Names are `classname > name`; `file` and `line` attributes are used when present.
 */
export function junitResults(xml: string, projectDir: string): ParsedRun {
  let doc: { testsuites?: Suite; testsuite?: unknown };
  try {
    doc = parser.parse(xml) as typeof doc;
  } catch (error) {
    return {
      reportFound: true,
      tests: [],
      loadErrors: [{ message: clip(`the JUnit report is not valid XML: ${(error as Error).message}`) }],
    };
  }
  const tests: TestResult[] = [];
  const visit = (suite: Suite, depth: number) => {
    for (const tc of asArray(suite.testcase) as Array<Record<string, unknown>>)
      tests.push(caseOf(tc, projectDir));
    if (depth < 16) for (const inner of asArray(suite.testsuite) as Suite[]) visit(inner, depth + 1);
  };
  const top = doc.testsuites ?? (doc.testsuite === undefined ? undefined : { testsuite: doc.testsuite });
  if (top === undefined) return { reportFound: false, tests: [], loadErrors: [] };
  visit(top, 0);
  return { reportFound: true, tests, loadErrors: [], ...(tests.length === 0 ? { noTestsFound: true } : {}) };
}

function caseOf(tc: Record<string, unknown>, projectDir: string): TestResult {
  const attr = (name: string) =>
    typeof tc[`@_${name}`] === 'string' ? (tc[`@_${name}`] as string) : undefined;
  const classname = attr('classname');
  const name = attr('name') ?? '';
  const failure = detail(tc['failure']) ?? detail(tc['error']);
  const result: TestResult = {
    name: classname === undefined || classname === '' ? name : `${classname} > ${name}`,
    status: failure !== undefined ? 'failed' : tc['skipped'] !== undefined ? 'skipped' : 'passed',
  };
  const file = attr('file');
  if (file !== undefined) result.file = path.resolve(projectDir, file);
  const line = attr('line');
  if (line !== undefined && /^\d+$/.test(line)) result.line = Number(line);
  const time = attr('time');
  if (time !== undefined && Number.isFinite(Number(time)))
    result.durationMs = Math.round(Number(time) * 1000);
  if (failure !== undefined) {
    const where = firstProjectFrame(failure.text, projectDir);
    const stack = trimStack(failure.text, projectDir);
    result.failure = {
      message: clip(
        (failure.message ?? failure.text.split('\n')[0] ?? 'test failed').trim() || 'test failed',
      ),
      ...(stack === undefined ? {} : { stack }),
      ...(where === undefined ? {} : where),
    };
  }
  return result;
}

function detail(value: unknown): { message?: string; text: string } | undefined {
  if (value === undefined) return undefined;
  const item = asArray(value)[0];
  if (typeof item === 'string') return { text: item };
  const node = (item ?? {}) as Record<string, unknown>;
  const text = node['#text'];
  return {
    ...(typeof node['@_message'] === 'string' ? { message: node['@_message'] } : {}),
    text: typeof text === 'string' || typeof text === 'number' ? String(text) : '',
  };
}
