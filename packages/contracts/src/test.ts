import { z } from 'zod';
import { count, shortText } from './common.js';

/** A test run as the orchestrator hands it on: the test-runner server's result, trimmed to what routing needs. */
export const testV1 = z
  .object({
    version: z.literal('test.v1'),
    runId: shortText(200, 'the test-runner run id (get_run reads it)'),
    project: shortText(500, 'the test project id'),
    outcome: z.enum(['passed', 'failed', 'error', 'timeout', 'no_tests']),
    totals: z.object({ passed: count, failed: count, skipped: count, total: count }).strict(),
    durationMs: count,
    failures: z
      .array(
        z.object({
          name: shortText(2000, 'the failing test'),
          file: z.string().max(1024).optional(),
          line: z.number().int().positive().optional(),
          message: z.string().max(4000),
        }),
      )
      .max(50)
      .describe('the first failures (at most 50)'),
  })
  .strict();

export type TestV1 = z.infer<typeof testV1>;
