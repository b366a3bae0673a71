import { budgetArg, createHeadTailBuffer, truncationSchema, type SandboxStatus } from '@keel/kit';
import * as z from 'zod';
import { frameworkNames } from '../frameworks/types.js';
import { outcomes, type RunRecord } from './record.js';
import { describeSandbox } from './sandboxed.js';

export const sandboxSchema = z
  .object({
    kind: z
      .enum(['bwrap', 'none'])
      .describe('`bwrap`: confined by bubblewrap; `none`: ran with the server’s own access.'),
    reason: z.string().optional().describe('Why it was not sandboxed.'),
  })
  .describe('What confined the code this ran (network off, only the roots writable, no HOME).');

/** The sandbox a stored run had; runs stored before there was one read as unsandboxed. */
export function sandboxOf(record: Pick<RunRecord, 'sandbox'>): SandboxStatus {
  return record.sandbox ?? { kind: 'none', reason: 'the run was recorded before runs were sandboxed' };
}

export const projectRefSchema = z.object({
  id: z.string().describe('Project id: `<dir>:<framework>`.'),
  dir: z.string().describe('Project directory, relative to the root.'),
  framework: z.enum(frameworkNames),
});

export const totalsSchema = z.object({
  total: z.number(),
  passed: z.number(),
  failed: z.number(),
  skipped: z.number(),
});

export const failureSchema = z.object({
  name: z.string().describe('Full test name (suite path included).'),
  file: z.string().optional().describe('Where it failed, relative to the root.'),
  line: z.number().optional(),
  message: z.string(),
  expected: z.string().optional(),
  actual: z.string().optional(),
  stack: z.string().optional().describe('Stack trimmed to frames inside the project.'),
});

export const errorSchema = z.object({
  file: z.string().optional(),
  message: z.string(),
  stack: z.string().optional(),
});

export const fileSummarySchema = z.object({
  file: z.string(),
  total: z.number(),
  passed: z.number(),
  failed: z.number(),
  skipped: z.number(),
});

export const runResultSchema = z.object({
  runId: z.string().describe('Pass to get_run, rerun_failed or classify_flaky.'),
  cached: z
    .boolean()
    .describe('True when the inputs were unchanged and the stored run was returned without running.'),
  project: projectRefSchema,
  outcome: z.enum(outcomes).describe('Only `passed` means every test ran and none failed.'),
  reason: z.string().optional().describe('Why the run ended as error, timeout or no_tests.'),
  totals: totalsSchema,
  durationMs: z.number(),
  exitCode: z.number().nullable(),
  command: z.array(z.string()).describe('What was run (report files under <scratch>).'),
  sandbox: sandboxSchema,
  failures: z.array(failureSchema),
  failuresTruncated: truncationSchema.optional(),
  errors: z.array(errorSchema).describe('Suites that failed to load or compile, crashes.'),
  files: z.array(fileSummarySchema),
  filesTruncated: truncationSchema.optional(),
  output: z.object({
    stdout: z.string().describe('Head and tail of the runner’s stdout.'),
    stderr: z.string().describe('Head and tail of the runner’s stderr.'),
  }),
});
export type RunResult = z.output<typeof runResultSchema>;

export const maxFailuresArg = budgetArg({ default: 20, max: 200, unit: 'failures', what: 'failures' });
export const maxLogBytesArg = budgetArg({
  default: 4096,
  max: 65_536,
  unit: 'bytes',
  what: 'stdout and of stderr each',
});
export const timeoutArg = z
  .number()
  .int()
  .min(1000)
  .max(3_600_000)
  .default(300_000)
  .describe('Kill the run after this many ms; the outcome is then `timeout`.');
export const maxFilesShown = 50;

/** Cuts text to a head and a tail of `maxBytes` in all, marking what was left out. */
export function headTail(text: string, maxBytes: number): string {
  const buffer = createHeadTailBuffer(maxBytes);
  buffer.push(Buffer.from(text, 'utf8'));
  return buffer.result().text;
}

/** The bounded view of a run that run_tests and rerun_failed return. */
export function presentRun(
  record: RunRecord,
  cached: boolean,
  budget: { maxFailures: number; maxLogBytes: number },
): RunResult {
  const result: RunResult = {
    runId: record.runId,
    cached,
    project: record.project,
    outcome: record.outcome,
    ...(record.reason === undefined ? {} : { reason: record.reason }),
    totals: record.totals,
    durationMs: record.durationMs,
    exitCode: record.exitCode,
    command: record.command,
    sandbox: sandboxOf(record),
    failures: record.failures.slice(0, budget.maxFailures),
    errors: record.errors.slice(0, 10),
    files: record.files.slice(0, maxFilesShown),
    output: {
      stdout: headTail(record.stdout, budget.maxLogBytes),
      stderr: headTail(record.stderr, budget.maxLogBytes),
    },
  };
  if (record.failures.length > budget.maxFailures) {
    result.failuresTruncated = { limit: budget.maxFailures, unit: 'items', total: record.failures.length };
  }
  if (record.files.length > maxFilesShown) {
    result.filesTruncated = { limit: maxFilesShown, unit: 'items', total: record.files.length };
  }
  return result;
}

/** The text a model sees first: outcome, counts, then each failure with where and why. */
export function renderRun(result: RunResult): string {
  const t = result.totals;
  const lines = [
    `${result.project.id}: ${result.outcome.toUpperCase()}${result.cached ? ' (cached)' : ''} — ${t.passed} passed, ${t.failed} failed, ${t.skipped} skipped of ${t.total} in ${result.durationMs} ms [${result.runId}]`,
  ];
  if (result.reason !== undefined) lines.push(`reason: ${result.reason}`);
  lines.push(describeSandbox(result.sandbox));
  for (const error of result.errors)
    lines.push(`ERROR ${error.file ?? ''}\n  ${error.message.split('\n').join('\n  ')}`);
  for (const failure of result.failures) {
    lines.push(
      `FAIL ${failure.name}${failure.file === undefined ? '' : ` (${failure.file}${failure.line === undefined ? '' : `:${failure.line}`})`}`,
    );
    lines.push(`  ${failure.message.split('\n').join('\n  ')}`);
    if (failure.expected !== undefined) lines.push(`  expected: ${failure.expected}`);
    if (failure.actual !== undefined) lines.push(`  actual:   ${failure.actual}`);
  }
  if (result.failuresTruncated !== undefined) {
    lines.push(
      `… ${result.failuresTruncated.total! - result.failuresTruncated.limit} more failures: get_run with runId ${result.runId}`,
    );
  }
  return lines.join('\n');
}
