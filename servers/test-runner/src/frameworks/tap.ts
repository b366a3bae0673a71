import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { clip, firstProjectFrame, showValue, trimStack } from './common.js';
import type { LoadError, ParsedRun, TestResult } from './types.js';

/** A `# name` comment that heads the assertions after it (how tape names its tests). */
interface TapGroup {
  name: string;
}

export interface TapPoint {
  ok: boolean;
  id?: number;
  description: string;
  directive?: { kind: 'skip' | 'todo'; reason: string };
  /** The YAML diagnostics block after the point, when there was one. */
  diagnostics?: Record<string, unknown>;
  /** The indented subtest the point closes (TAP 14, node-tap). */
  subtest?: TapDocument;
  group?: TapGroup;
  /** Not in the stream as a point: a test the producer reported as skipped in a comment (tape). */
  synthetic?: boolean;
}

export interface TapDocument {
  points: TapPoint[];
  plan?: { count: number; skip?: string };
  bailOut?: string;
}

const pointLine = /^(not )?ok\b\s*(\d+)?\s*(?:-\s+)?(.*)$/;
const planLine = /^1\.\.(\d+)\s*(?:#\s*(.*))?$/;
const maxDepth = 32;
/** Comments that summarise a run (tape's `# tests 5`, `# fail 1`, `# ok`), not test names. */
const summaryComment =
  /^(?:(?:tests|pass|fail|todo|skip|ok)(?:\s+\d+)?|failed \d+ of \d+ tests?|(?:todo|skip): \d+|time=.*)$/;

/**
 * Reads a TAP 13/14 stream: test points with SKIP/TODO directives and YAML diagnostics, plans,
 * `Bail out!`, indented subtests, and `# name` comments as group headers. Lines that are not TAP
 * (a test's own console output) are skipped. `found` is false when nothing in it was TAP.
 */
export function parseTap(text: string): TapDocument & { found: boolean } {
  const root: TapDocument = { points: [] };
  // One open document per indentation level (4 spaces each); a deeper one is the subtest that the
  // next point at its parent's level closes.
  const stack: Array<{ doc: TapDocument; group?: TapGroup }> = [{ doc: root }];
  let pendingSubtest: TapDocument | undefined;
  let yaml: { indent: string; lines: string[]; point: TapPoint } | undefined;
  let found = false;

  for (const rawLine of text.split(/\r?\n/)) {
    if (yaml !== undefined) {
      if (rawLine.trimEnd() === `${yaml.indent}...`) {
        yaml.point.diagnostics = readYaml(yaml.lines.join('\n'));
        yaml = undefined;
        continue;
      }
      if (rawLine.startsWith(yaml.indent) || rawLine.trim() === '') {
        yaml.lines.push(rawLine.slice(yaml.indent.length));
        continue;
      }
      // An unterminated block ends at the first line outside its indentation.
      yaml.point.diagnostics = readYaml(yaml.lines.join('\n'));
      yaml = undefined;
    }
    const spaces = /^ */.exec(rawLine)![0].length;
    const depth = Math.min(Math.floor(spaces / 4), maxDepth);
    const line = rawLine.slice(depth * 4);
    const trimmed = line.trim();
    if (trimmed === '') continue;

    const isTap =
      pointLine.test(line) ||
      planLine.test(line) ||
      line.startsWith('# ') ||
      line.startsWith('  ---') ||
      /^TAP version \d+/.test(line) ||
      line.startsWith('Bail out!');
    if (!isTap) continue;
    if (depth > 0 && stack.length < depth && !line.startsWith('# Subtest')) {
      // Indented text that opens no subtest: console output, not TAP.
      if (!pointLine.test(line) && !planLine.test(line)) continue;
    }
    found = true;

    // Enter or leave subtest levels to match this line's depth.
    while (stack.length > depth + 1) {
      const closed = stack.pop()!;
      pendingSubtest = closed.doc;
    }
    while (stack.length < depth + 1) {
      stack.push({ doc: { points: [] } });
      pendingSubtest = undefined;
    }
    const level = stack[stack.length - 1]!;

    if (line.startsWith('  ---')) {
      const last = level.doc.points.at(-1);
      if (last !== undefined) yaml = { indent: `${' '.repeat(depth * 4)}  `, lines: [], point: last };
      continue;
    }
    if (line.startsWith('TAP version')) continue;
    if (line.startsWith('Bail out!')) {
      root.bailOut = line.slice('Bail out!'.length).trim();
      continue;
    }
    const plan = planLine.exec(line);
    if (plan !== null) {
      level.doc.plan = {
        count: Number(plan[1]),
        ...(plan[2] !== undefined && /^skip\b/i.test(plan[2])
          ? { skip: plan[2].replace(/^skip\s*/i, '') }
          : {}),
      };
      continue;
    }
    if (line.startsWith('# ')) {
      const comment = line.slice(2).trim().replace(/\s+/g, ' ');
      if (summaryComment.test(comment) || comment.startsWith('Subtest') || comment.startsWith('time='))
        continue;
      // tape names a skipped test in a comment and runs nothing for it; a todo test's name comes as `TODO name`.
      const skipped = /^SKIP (.*)$/.exec(comment);
      level.group = { name: skipped?.[1] ?? comment.replace(/^TODO /, '') };
      if (skipped !== null) {
        level.doc.points.push({
          ok: true,
          description: skipped[1]!,
          directive: { kind: 'skip', reason: '' },
          group: level.group,
          synthetic: true,
        });
      }
      continue;
    }
    const point = pointLine.exec(line);
    if (point !== null) {
      const parsed: TapPoint = { ok: point[1] === undefined, description: '' };
      if (point[2] !== undefined) parsed.id = Number(point[2]);
      const { description, directive } = splitDirective(point[3] ?? '');
      parsed.description = description;
      if (directive !== undefined) parsed.directive = directive;
      if (pendingSubtest !== undefined) {
        parsed.subtest = pendingSubtest;
        pendingSubtest = undefined;
      } else if (level.group !== undefined) parsed.group = level.group;
      level.doc.points.push(parsed);
    }
  }
  if (yaml !== undefined) yaml.point.diagnostics = readYaml(yaml.lines.join('\n'));
  return { ...root, found };
}

/** `desc # SKIP why` → the description and the directive; `\#` is a literal hash; node-tap's `# time=` is dropped. */
function splitDirective(rest: string): Pick<TapPoint, 'description' | 'directive'> {
  const match = /^(.*?)(?<!\\)\s*#\s*(skip|todo)\b\S*\s*(.*)$/i.exec(rest);
  const clean = (text: string) =>
    text
      .replace(/\s*(?<!\\)#\s*time=\S+\s*$/, '')
      .replaceAll('\\#', '#')
      .trim();
  if (match === null) return { description: clean(rest) };
  return {
    description: clean(match[1]!),
    directive: { kind: match[2]!.toLowerCase() as 'skip' | 'todo', reason: clean(match[3]!) },
  };
}

function readYaml(text: string): Record<string, unknown> {
  try {
    const value: unknown = parseYaml(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : { message: text };
  } catch {
    // Diagnostics that are not valid YAML are still worth showing as text.
    return { message: text };
  }
}

/**
 * Turns a TAP document into test results. A test is a group of assertions: those under one `# name`
 * comment (tape), those directly inside a subtest (node-tap), or else one top-level point each. A
 * test fails when one of its assertions does (a TODO failure does not), and is skipped when all are.
 */
export function tapResults(
  tap: TapDocument & { found: boolean },
  context: { projectDir: string; exitCode: number | null; stderr: string },
): ParsedRun {
  const tests: TestResult[] = [];
  collect(tap, [], tests, context.projectDir);
  const loadErrors: LoadError[] = [];
  const total = tap.points.filter((p) => p.synthetic !== true).length;
  const tail = context.stderr.trim().split('\n').slice(-10).join('\n');
  if (tap.bailOut !== undefined) loadErrors.push({ message: clip(`Bail out! ${tap.bailOut}`.trim()) });
  else if (tap.found && tap.plan === undefined && context.exitCode !== 0) {
    loadErrors.push({
      message: clip(
        `the TAP output ended without a plan: the run stopped after ${total} test point(s)${tail === '' ? '' : `\n${tail}`}`,
      ),
    });
  } else if (tap.plan !== undefined && tap.plan.count !== total && tap.plan.skip === undefined) {
    loadErrors.push({
      message: clip(
        `the TAP plan announced ${tap.plan.count} test point(s) but ${total} ran${tail === '' ? '' : `\n${tail}`}`,
      ),
    });
  }
  return {
    reportFound: tap.found,
    tests,
    loadErrors,
    ...(tap.plan?.count === 0 || (tap.found && total === 0 && tap.bailOut === undefined)
      ? { noTestsFound: true }
      : {}),
  };
}

function collect(doc: TapDocument, names: readonly string[], out: TestResult[], projectDir: string): void {
  // Groups keyed by identity, so two tests that share a name stay two tests.
  const groups = new Map<object, { name: string[]; points: TapPoint[] }>();
  const inline = {};
  for (const point of doc.points) {
    if (point.subtest !== undefined) {
      const name = [...names, point.description || `subtest ${point.id ?? ''}`.trim()];
      const before = out.length;
      collect(point.subtest, name, out, projectDir);
      const childFailed = out.slice(before).some((t) => t.status === 'failed');
      const failedItself = !point.ok && point.directive?.kind !== 'todo';
      // A subtest that failed without a failing assertion (a wrong plan, a timeout) is a failure of its own.
      if ((failedItself && !childFailed) || out.length === before) {
        out.push(resultOf(name, [point], projectDir));
      }
      continue;
    }
    // Inside a subtest, its plain assertions make up one test named after it; a skipped or todo point
    // there is a subtest that did not run (node-tap), so a test of its own.
    const key: object = point.group ?? (names.length > 0 && point.directive === undefined ? inline : point);
    const group = groups.get(key) ?? {
      name:
        point.group !== undefined
          ? [...names, point.group.name]
          : key === inline
            ? [...names]
            : [...names, point.description || `test ${point.id ?? ''}`.trim()],
      points: [],
    };
    group.points.push(point);
    groups.set(key, group);
  }
  for (const group of groups.values()) out.push(resultOf(group.name, group.points, projectDir));
}

function resultOf(name: readonly string[], points: readonly TapPoint[], projectDir: string): TestResult {
  const failing = points.find((p) => !p.ok && p.directive?.kind !== 'todo');
  const status =
    failing !== undefined ? 'failed' : points.every((p) => p.directive !== undefined) ? 'skipped' : 'passed';
  const result: TestResult = { name: name.join(' > '), status };
  if (failing === undefined) return result;
  const diag = failing.diagnostics ?? {};
  const stackText = typeof diag['stack'] === 'string' ? diag['stack'] : undefined;
  const where = locate(diag['at'], projectDir) ?? firstProjectFrame(stackText, projectDir);
  const expected = showValue(diag['expected'] ?? diag['wanted']);
  const actual = showValue(diag['actual'] ?? diag['found']);
  const stack = trimStack(stackText, projectDir);
  // tape and node-tap describe the failed assertion; node --test's TAP names the test and puts the
  // thrown error's message in the diagnostics (`error:`), which is the part a reader needs.
  const detail = [diag['message'], diag['error']].find(
    (value): value is string => typeof value === 'string' && value !== '' && value !== failing.description,
  );
  const described =
    detail === undefined
      ? failing.description || 'not ok'
      : failing.description
        ? `${failing.description}: ${detail}`
        : detail;
  // node-tap gives a diff instead of expected/actual for most comparisons.
  const diff =
    typeof diag['diff'] === 'string' && expected === undefined ? diag['diff'].trimEnd() : undefined;
  const message = diff === undefined ? described : `${described}\n${diff}`;
  result.failure = {
    message: clip(message),
    ...(expected === undefined ? {} : { expected }),
    ...(actual === undefined ? {} : { actual }),
    ...(stack === undefined ? {} : { stack }),
    ...(where === undefined ? {} : where),
  };
  if (where !== undefined) {
    result.file = where.file;
    result.line = where.line;
  }
  return result;
}

/** Where an assertion failed: tape's `at: fn (/abs/file.js:9:5)` or node-tap's `at: { file, line }`. */
function locate(at: unknown, projectDir: string): { file: string; line: number } | undefined {
  if (typeof at === 'string') return firstProjectFrame(at.includes('(') ? at : `(${at})`, projectDir);
  if (at !== null && typeof at === 'object') {
    // node-tap 16 writes `file`/`line`; 18 and later `fileName`/`lineNumber`.
    const where = at as { file?: unknown; line?: unknown; fileName?: unknown; lineNumber?: unknown };
    const file = where.file ?? where.fileName;
    const line = where.line ?? where.lineNumber;
    if (typeof file !== 'string' || typeof line !== 'number') return undefined;
    const full = path.isAbsolute(file) ? file : path.join(projectDir, file);
    if (!full.startsWith(`${projectDir}${path.sep}`) || full.includes(`${path.sep}node_modules${path.sep}`))
      return undefined;
    return { file: full, line };
  }
  return undefined;
}
