import { ok } from '@keel/kit';
import * as z from 'zod';
import { defineProjectTool, type TestRunnerTool } from '../projects/prepare.js';
import { executeRun, filesInProject, type RunnerDeps } from '../runs/execute.js';
import {
  maxFailuresArg,
  maxLogBytesArg,
  presentRun,
  renderRun,
  runResultSchema,
  timeoutArg,
} from '../runs/present.js';

/** Printable text without control characters: a filter is data for the framework, never a line break or NUL. */
export const testNamePatternArg = z
  .string()
  .min(1)
  .max(1000)
  .regex(/^[^\x00-\x1f\x7f]*$/, 'no control characters')
  .optional()
  .describe(
    "Only tests whose name matches, in the framework's syntax: a regex (vitest, jest, mocha, node:test, go), a -k expression (pytest), a substring (cargo).",
  );

export const projectArg = z
  .string()
  .min(1)
  .max(1000)
  .optional()
  .describe(
    'Project id from detect_projects (`packages/api:vitest`) or its directory (`packages/api`, or a unique name: `api`); optional when there is one project.',
  );

/** `run_tests`: runs a project's tests with the server's own command template and returns typed failures. */
export function runTestsTool(deps: RunnerDeps): TestRunnerTool {
  return defineProjectTool({
    name: 'run_tests',
    title: 'Run tests',
    description:
      "Runs a project's tests (or some files, or a name filter): outcome, totals, each failure with file, line, message, expected/actual and stack, per-file counts, the head and tail of the output. Unchanged inputs return the stored run (cached: true) unless fresh.",
    input: z.object({
      project: projectArg,
      files: z
        .array(z.string().min(1).max(4096))
        .max(200)
        .default([])
        .describe('Test files to run (relative to the root), inside the project; none: the whole suite.'),
      testNamePattern: testNamePatternArg,
      timeoutMs: timeoutArg,
      fresh: z.boolean().default(false).describe('Run even when a stored run for identical inputs exists.'),
      maxFailures: maxFailuresArg,
      maxLogBytes: maxLogBytesArg,
    }),
    output: runResultSchema,
    effect: 'write',
    idempotent: true,
    paths: { files: 'existing' },
    timeoutMs: 3_700_000,
    render: renderRun,
    handler: async (input, ctx) => {
      const project = ctx.prepared;
      const files = filesInProject(
        project,
        (ctx.paths.files ?? []).map((p) => p.real),
        (real) => ctx.jail.display(real),
      );
      if (!files.ok) return files;
      const selection = {
        files: files.value,
        ...(input.testNamePattern === undefined ? {} : { testNamePattern: input.testNamePattern }),
      };
      const shown = {
        files: files.value.map((f) => ctx.jail.display(f)),
        ...(input.testNamePattern === undefined ? {} : { testNamePattern: input.testNamePattern }),
      };
      const { record, cached } = await executeRun(ctx, deps, project, selection, {
        timeoutMs: input.timeoutMs,
        fresh: input.fresh,
        shownSelection: shown,
      });
      return ok(presentRun(record, cached, input));
    },
  });
}
