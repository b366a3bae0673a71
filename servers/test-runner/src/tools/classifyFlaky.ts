import { fail, ok } from '@keel/kit';
import * as z from 'zod';
import { defineProjectTool, type TestRunnerTool } from '../projects/prepare.js';
import { executeRun, failedSelection, type RunnerDeps } from '../runs/execute.js';
import { outcomes } from '../runs/record.js';
import { loadRun } from '../runs/store.js';
import { runIdArg } from './getRun.js';

const verdicts = ['flaky', 'consistent', 'not_run'] as const;

/** `classify_flaky`: re-runs a run's failed tests several times and says which ones only fail sometimes. */
export function classifyFlakyTool(deps: RunnerDeps): TestRunnerTool {
  return defineProjectTool({
    name: 'classify_flaky',
    title: 'Classify failures as flaky',
    description:
      'Re-runs the failed tests of a past run N times (always fresh) and classifies each: flaky (passed at least once), consistent (failed every time) or not_run (never executed, e.g. the re-runs errored or timed out).',
    input: z.object({
      runId: runIdArg,
      attempts: z.number().int().min(1).max(10).default(3).describe('How many times to re-run.'),
      timeoutMs: z
        .number()
        .int()
        .min(1000)
        .max(600_000)
        .default(120_000)
        .describe('Time limit per attempt in ms.'),
    }),
    output: z.object({
      runId: z.string(),
      attempts: z.array(z.object({ runId: z.string(), outcome: z.enum(outcomes) })),
      tests: z.array(
        z.object({
          name: z.string(),
          file: z.string().optional(),
          verdict: z.enum(verdicts),
          passes: z.number(),
          failures: z.number(),
        }),
      ),
      flaky: z.number(),
      consistent: z.number(),
      notRun: z.number(),
    }),
    effect: 'write',
    idempotent: true,
    timeoutMs: 6_200_000,
    render: (out) =>
      [
        `${out.flaky} flaky, ${out.consistent} consistent, ${out.notRun} not run after ${out.attempts.length} attempts (${out.attempts.map((a) => a.outcome).join(', ')})`,
        ...out.tests.map(
          (t) => `${t.verdict.toUpperCase()} ${t.name} (${t.passes} passed, ${t.failures} failed)`,
        ),
      ].join('\n'),
    handler: async (input, ctx) => {
      const loaded = await loadRun(deps.store, input.runId);
      if (!loaded.ok) return loaded;
      const record = loaded.value;
      if (record.failedSelectors.length === 0) {
        return fail(
          'PRECONDITION_FAILED',
          `run ${input.runId} has no failed tests to classify (outcome ${record.outcome})`,
          {
            hint:
              record.outcome === 'error'
                ? 'Load or compile errors are not flaky; fix them and run again.'
                : 'Pick a run whose outcome is failed.',
          },
        );
      }
      const project = ctx.prepared;
      const failed = await failedSelection(ctx, record, project);
      if (!failed.ok) return failed;
      const selection = failed.value;
      const counts = record.failedSelectors.map((s, i) => ({
        selector: s,
        failure: record.failures[i],
        passes: 0,
        failures: 0,
      }));
      const attempts: Array<{ runId: string; outcome: (typeof outcomes)[number] }> = [];
      for (let attempt = 1; attempt <= input.attempts; attempt++) {
        ctx.progress(attempt - 1, input.attempts, `attempt ${attempt} of ${input.attempts}`);
        const { record: rerun } = await executeRun(ctx, deps, project, selection, {
          timeoutMs: input.timeoutMs,
          fresh: true,
          shownSelection: { files: selection.files.map((f) => ctx.jail.display(f)) },
        });
        attempts.push({ runId: rerun.runId, outcome: rerun.outcome });
        if (rerun.outcome === 'error' || rerun.outcome === 'timeout') continue;
        const failedNow = new Set(rerun.failedSelectors.map((s) => s.name));
        // Names of the tests this attempt ran: the failed ones, plus those it counted as passed.
        const ranNames = await passedNames(rerun.runId, deps);
        for (const count of counts) {
          if (failedNow.has(count.selector.name)) count.failures++;
          else if (ranNames.has(count.selector.name)) count.passes++;
        }
      }
      const tests = counts.map((c) => {
        const verdict = c.passes > 0 ? 'flaky' : c.failures > 0 ? 'consistent' : 'not_run';
        return {
          name: c.failure?.name ?? c.selector.name,
          ...(c.failure?.file === undefined ? {} : { file: c.failure.file }),
          verdict: verdict as (typeof verdicts)[number],
          passes: c.passes,
          failures: c.failures,
        };
      });
      return ok({
        runId: input.runId,
        attempts,
        tests,
        flaky: tests.filter((t) => t.verdict === 'flaky').length,
        consistent: tests.filter((t) => t.verdict === 'consistent').length,
        notRun: tests.filter((t) => t.verdict === 'not_run').length,
      });
    },
  });
}

async function passedNames(runId: string, deps: RunnerDeps): Promise<Set<string>> {
  const record = await deps.store.get(runId);
  return new Set(record?.passedSelectors ?? []);
}
