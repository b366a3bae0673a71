import { fail, ok } from '@keel/kit';
import * as z from 'zod';
import { defineProjectTool, type TestRunnerTool } from '../projects/prepare.js';
import { executeRun, failedSelection, type RunnerDeps } from '../runs/execute.js';
import {
  maxFailuresArg,
  maxLogBytesArg,
  presentRun,
  renderRun,
  runResultSchema,
  timeoutArg,
} from '../runs/present.js';
import { loadRun } from '../runs/store.js';
import { runIdArg } from './getRun.js';

/** `rerun_failed`: runs again exactly the tests that failed in a stored run (or the files that failed to load). */
export function rerunFailedTool(deps: RunnerDeps): TestRunnerTool {
  return defineProjectTool({
    name: 'rerun_failed',
    title: 'Re-run failed tests',
    description:
      'Re-runs only what failed in a past run: its failed tests by exact name, or, when suites failed to load, those files. Returns the same shape as run_tests, with rerunOf naming the original run.',
    input: z.object({
      runId: runIdArg,
      timeoutMs: timeoutArg,
      fresh: z.boolean().default(false).describe('Run even when a stored run for identical inputs exists.'),
      maxFailures: maxFailuresArg,
      maxLogBytes: maxLogBytesArg,
    }),
    output: runResultSchema.extend({ rerunOf: z.string().describe('The run whose failures were re-run.') }),
    effect: 'write',
    idempotent: true,
    timeoutMs: 3_700_000,
    render: (out) => `re-run of ${out.rerunOf}\n${renderRun(out)}`,
    handler: async (input, ctx) => {
      const record = await loadRun(deps.store, input.runId);
      if (!record.ok) return record;
      const project = ctx.prepared;
      const failed = await failedSelection(ctx, record.value, project);
      if (!failed.ok) return failed;
      let selection = failed.value;
      if (record.value.failedSelectors.length === 0) {
        const files: string[] = [];
        for (const error of record.value.errors) {
          if (error.file === undefined) continue;
          const resolved = await ctx.jail.resolve(error.file);
          if (resolved.ok && resolved.value.exists) files.push(resolved.value.real);
        }
        if (files.length === 0) {
          return fail(
            'PRECONDITION_FAILED',
            `run ${input.runId} has nothing to re-run (outcome ${record.value.outcome}, no failed test or failed file)`,
            {
              hint: 'Use run_tests to run the suite again.',
            },
          );
        }
        selection = { files: [...new Set(files)] };
      }
      const { record: rerun, cached } = await executeRun(ctx, deps, project, selection, {
        timeoutMs: input.timeoutMs,
        fresh: input.fresh,
        shownSelection: { files: selection.files.map((f) => ctx.jail.display(f)) },
      });
      return ok({ ...presentRun(rerun, cached, input), rerunOf: input.runId });
    },
  });
}
