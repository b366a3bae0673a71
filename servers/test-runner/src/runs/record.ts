import type { SandboxStatus } from '@keel/kit';
import type { FrameworkName } from '../frameworks/types.js';

export const outcomes = ['passed', 'failed', 'error', 'timeout', 'no_tests'] as const;
/** How a run ended. Only `passed` means the tests ran and none failed. */
export type Outcome = (typeof outcomes)[number];

export interface FailureRecord {
  name: string;
  /** Root-relative. */
  file?: string;
  line?: number;
  message: string;
  expected?: string;
  actual?: string;
  stack?: string;
}

export interface ErrorRecord {
  file?: string;
  message: string;
  stack?: string;
}

export interface FileSummary {
  file: string;
  total: number;
  passed: number;
  failed: number;
  skipped: number;
}

export interface Totals {
  total: number;
  passed: number;
  failed: number;
  skipped: number;
}

/** Everything kept of one run: what `get_run`, `rerun_failed` and `classify_flaky` work from. */
export interface RunRecord {
  runId: string;
  createdAt: string;
  cacheKey: string;
  project: { id: string; dir: string; framework: FrameworkName };
  selection: { files: string[]; testNamePattern?: string };
  outcome: Outcome;
  /** Why the outcome is not plain pass/fail (a crash, the timeout, nothing ran). */
  reason?: string;
  totals: Totals;
  durationMs: number;
  exitCode: number | null;
  command: string[];
  /**
   * What confined the run. Absent on runs stored before runs were sandboxed, which read as
   * unsandboxed.
   */
  sandbox?: SandboxStatus;
  failures: FailureRecord[];
  /** Exact identities of failed tests for re-running them. */
  failedSelectors: Array<{ name: string; file?: string }>;
  /** Identities of the tests that passed, so a re-run can tell "passed now" from "did not run". */
  passedSelectors: string[];
  errors: ErrorRecord[];
  files: FileSummary[];
  stdout: string;
  stderr: string;
}
