import path from 'node:path';
import { KeelError } from '@keel/kit';
import { clip } from './common.js';
import type { FrameworkAdapter, LoadError, ParsedRun, TestResult } from './types.js';

const envAllowlist = ['CARGO_HOME', 'RUSTUP_HOME', 'RUSTUP_TOOLCHAIN'] as const;

/**
 * Stable cargo has no machine-readable test output (libtest's `--format json` is nightly-only), so
 * this adapter reads libtest's plain, line-oriented format: one `test NAME ... STATUS` line per test
 * and a `---- NAME stdout ----` block per failure.
 */
export const cargoAdapter: FrameworkAdapter = {
  name: 'cargo',
  reporter: 'libtest plain output (stable cargo has no JSON test output)',
  async planRun(selection, { project }) {
    const args = [...(project.launcher?.slice(1) ?? []), 'test', '--no-fail-fast', '--color=never'];
    for (const file of selection.files) args.push(...targetFor(file, project.dir));
    args.push('--', '--color=never');
    if (selection.exactNames !== undefined) {
      args.push('--exact', '--', ...selection.exactNames.map((n) => n.name));
    } else if (selection.testNamePattern !== undefined) {
      // libtest's own `--` ends its options, so a filter like `--ignored` stays a filter.
      args.push('--', selection.testNamePattern);
    }
    return {
      command: project.launcher?.[0] ?? 'cargo',
      args,
      env: { CARGO_TERM_COLOR: 'never', RUST_BACKTRACE: '0' },
      envAllowlist,
    };
  },
  async parseRun(process, { project }) {
    return parseCargoOutput(process.stdout, process.stderr, process.exitCode, project.dir);
  },
  async planList({ project }) {
    return {
      command: project.launcher?.[0] ?? 'cargo',
      args: [
        ...(project.launcher?.slice(1) ?? []),
        'test',
        '--color=never',
        '--',
        '--list',
        '--format=terse',
      ],
      env: { CARGO_TERM_COLOR: 'never' },
      envAllowlist,
    };
  },
  async parseList(process) {
    const tests = [];
    for (const line of process.stdout.split('\n')) {
      const match = /^(.+): test$/.exec(line.trim());
      if (match !== null) tests.push({ name: match[1]! });
    }
    const errors: LoadError[] =
      /error(\[E\d+\])?:/.test(process.stderr) && process.exitCode !== 0
        ? [{ message: clip(compileErrors(process.stderr)) }]
        : [];
    return { tests, errors };
  },
  async version(context, run) {
    const out = await run(context.project.launcher?.[0] ?? 'cargo', ['--version'], context.project.dir);
    return /cargo ([\w.-]+)/.exec(out.stdout)?.[1];
  },
};

/** Maps a file to the cargo target that holds it: `tests/x.rs` → `--test x`, anything in src → `--lib`/`--bins`. */
function targetFor(file: string, projectDir: string): string[] {
  const rel = path.relative(projectDir, file);
  const integration = /^tests\/([^/]+)\.rs$/.exec(rel) ?? /^tests\/([^/]+)\/main\.rs$/.exec(rel);
  if (integration !== null) return [`--test=${integration[1]}`];
  if (rel === 'src/main.rs' || rel.startsWith('src/bin/')) return ['--bins'];
  if (rel.startsWith('src/')) return ['--lib'];
  throw new KeelError('INVALID_ARGUMENT', `'${rel}' is not in a cargo test target`, {
    hint: 'Pass files under src/ (unit tests) or tests/NAME.rs (integration tests), or no files to run the crate.',
  });
}

function compileErrors(stderr: string): string {
  const lines = stderr.split('\n');
  const start = lines.findIndex((l) => /^error(\[E\d+\])?:/.test(l));
  return lines
    .slice(Math.max(0, start), start + 40)
    .join('\n')
    .trim();
}

/** Reads libtest's output (exported for unit tests on recorded output). */
export function parseCargoOutput(
  stdout: string,
  stderr: string,
  exitCode: number | null,
  projectDir: string,
): ParsedRun {
  const tests: TestResult[] = [];
  const loadErrors: LoadError[] = [];
  const byName = new Map<string, TestResult>();
  let sawRunning = false;
  for (const line of stdout.split('\n')) {
    if (/^running \d+ tests?$/.test(line)) sawRunning = true;
    const match = /^test (.+?) \.\.\. (ok|FAILED|ignored(?:, .*)?)$/.exec(line);
    if (match === null) continue;
    const status = match[2] === 'ok' ? 'passed' : match[2] === 'FAILED' ? 'failed' : 'skipped';
    const result: TestResult = { name: match[1]!, status };
    tests.push(result);
    byName.set(result.name, result);
  }
  // Failure blocks: "---- NAME stdout ----" up to the next block or the "failures:" list.
  const blocks = stdout.split(/^---- (.+?) stdout ----$/m);
  for (let i = 1; i < blocks.length; i += 2) {
    const name = blocks[i]!;
    const body = (blocks[i + 1] ?? '').split(/^failures:$/m)[0]!.trim();
    const test = byName.get(name);
    if (test === undefined) continue;
    const panic = /panicked at ([^\n:]+):(\d+):(\d+):\n([\s\S]*?)(?:\nnote:|\nstack backtrace:|$)/.exec(body);
    const message = (panic?.[4] ?? body).trim();
    const failure: NonNullable<TestResult['failure']> = {
      message: clip(message || 'test failed'),
      stack: clip(body),
    };
    const left = /^\s*left: (.*)$/m.exec(message);
    const right = /^\s*right: (.*)$/m.exec(message);
    // assert_eq!(actual, expected) is the Rust convention: left is what the code produced.
    if (left !== null && right !== null) {
      failure.actual = clip(left[1]!);
      failure.expected = clip(right[1]!);
    }
    if (panic !== null) {
      failure.file = path.resolve(projectDir, panic[1]!);
      failure.line = Number(panic[2]);
      test.file = failure.file;
    }
    test.failure = failure;
  }
  if (
    /^error(\[E\d+\])?: /m.test(stderr) &&
    /could not compile|error: aborting|failed to compile/.test(stderr)
  ) {
    const where = /-->\s+([^\s:]+):(\d+):\d+/.exec(stderr);
    loadErrors.push({
      ...(where === null ? {} : { file: path.resolve(projectDir, where[1]!) }),
      message: clip(compileErrors(stderr)),
    });
  } else if (exitCode !== 0 && !sawRunning && tests.length === 0) {
    loadErrors.push({
      message: clip(stderr.trim().split('\n').slice(-20).join('\n') || `cargo exited with ${exitCode}`),
    });
  }
  return { reportFound: sawRunning || loadErrors.length > 0, tests, loadErrors };
}
