import { writeFileSync } from 'node:fs';

// Loaded by vitest inside the test run (never by the server): it dumps the finished task tree,
// errors included with their expected/actual values, to the file named in KEEL_TEST_REPORT.

interface ErrorLike {
  message?: unknown;
  stack?: unknown;
  expected?: unknown;
  actual?: unknown;
  name?: unknown;
}

interface TestCaseLike {
  name: string;
  fullName: string;
  location?: { line: number; column: number };
  result(): { state: string; errors?: readonly ErrorLike[] };
  diagnostic(): { duration?: number } | undefined;
}

interface TestModuleLike {
  moduleId: string;
  state(): string;
  errors(): readonly ErrorLike[];
  children: { allTests(): Iterable<TestCaseLike> };
}

function serializeError(error: ErrorLike) {
  return {
    // oxlint-disable-next-line typescript/no-base-to-string -- a thrown value may be anything; its String() is the message
    message: String(error.message ?? error),
    stack: typeof error.stack === 'string' ? error.stack : undefined,
    expected: error.expected,
    actual: error.actual,
    name: typeof error.name === 'string' ? error.name : undefined,
  };
}

export default class KeelVitestReporter {
  onTestRunEnd(
    modules: readonly TestModuleLike[],
    unhandledErrors: readonly ErrorLike[],
    reason: string,
  ): void {
    const target = process.env['KEEL_TEST_REPORT'];
    if (target === undefined) return;
    const report = {
      reason,
      unhandledErrors: unhandledErrors.map(serializeError),
      modules: modules.map((module) => ({
        file: module.moduleId,
        state: module.state(),
        errors: module.errors().map(serializeError),
        tests: [...module.children.allTests()].map((test) => {
          const result = test.result();
          return {
            name: test.name,
            fullName: test.fullName,
            line: test.location?.line,
            state: result.state,
            duration: test.diagnostic()?.duration,
            errors: (result.errors ?? []).map(serializeError),
          };
        }),
      })),
    };
    writeFileSync(target, JSON.stringify(report));
  }
}
