// Loaded by `node --test` inside the test run (never by the server): one JSON line per finished
// test, with the assertion's expected/actual, plus the stderr of files that died before reporting.

interface NodeTestEvent {
  type: string;
  data: {
    name?: string;
    nesting?: number;
    file?: string;
    line?: number;
    skip?: unknown;
    todo?: unknown;
    message?: string;
    details?: {
      type?: string;
      duration_ms?: number;
      error?: { failureType?: string; message?: string; stack?: string; cause?: unknown };
    };
  };
}

export default async function* keelNodeTestReporter(source: AsyncIterable<NodeTestEvent>) {
  for await (const event of source) {
    const data = event.data;
    if (event.type === 'test:stderr') {
      yield `${JSON.stringify({ type: 'stderr', file: data.file, message: data.message })}\n`;
      continue;
    }
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const error = data.details?.error;
    const cause = error?.cause as
      { message?: unknown; stack?: unknown; expected?: unknown; actual?: unknown } | undefined;
    const failure =
      error === undefined
        ? undefined
        : {
            failureType: error.failureType,
            // oxlint-disable-next-line typescript/no-base-to-string -- a thrown value may be anything; its String() is the message
            message: String(cause?.message ?? error.message ?? 'test failed'),
            stack: typeof cause?.stack === 'string' ? cause.stack : error.stack,
            expected: cause?.expected,
            actual: cause?.actual,
          };
    yield `${JSON.stringify({
      type: event.type === 'test:pass' ? 'pass' : 'fail',
      name: data.name,
      nesting: data.nesting,
      file: data.file,
      line: data.line,
      kind: data.details?.type,
      skip: data.skip !== undefined && data.skip !== false,
      todo: data.todo !== undefined && data.todo !== false,
      duration: data.details?.duration_ms,
      failure,
    })}\n`;
  }
}
