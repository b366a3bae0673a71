import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { budgetArg, cursorArg, defaultEnvAllowlist, fail, ok, truncationSchema } from '@keel/kit';
import * as z from 'zod';
import { defineProjectTool, type TestRunnerTool } from '../projects/prepare.js';
import { adapters } from '../frameworks/registry.js';
import type { RunnerDeps } from '../runs/execute.js';
import { errorSchema, projectRefSchema, sandboxSchema } from '../runs/present.js';
import { describeSandbox, runSandboxed } from '../runs/sandboxed.js';
import { projectArg } from './runTests.js';

/** `list_tests`: the tests a framework discovers without running them, paged. */
export function listTestsTool(deps: RunnerDeps): TestRunnerTool {
  return defineProjectTool({
    name: 'list_tests',
    title: 'List tests',
    description:
      "Lists a project's tests as its framework discovers them (jest: files only; node:test cannot list without running). Discovery imports the test modules.",
    input: z.object({
      project: projectArg,
      limit: budgetArg({ default: 100, max: 1000, unit: 'items', what: 'tests' }),
      cursor: cursorArg,
    }),
    output: z.object({
      project: projectRefSchema,
      tests: z.array(
        z.object({ name: z.string(), file: z.string().optional(), line: z.number().optional() }),
      ),
      total: z.number(),
      sandbox: sandboxSchema,
      errors: z.array(errorSchema).describe('Files that failed to be collected.'),
      truncated: truncationSchema.optional(),
    }),
    effect: 'read',
    cursorIgnores: ['limit'],
    timeoutMs: 300_000,
    render: (out) =>
      [
        `${out.project.id}: ${out.total} tests`,
        describeSandbox(out.sandbox),
        ...out.errors.map((e) => `ERROR ${e.file ?? ''} ${e.message}`),
        ...out.tests.map(
          (t) =>
            `${t.name}${t.file === undefined ? '' : ` (${t.file}${t.line === undefined ? '' : `:${t.line}`})`}`,
        ),
      ].join('\n'),
    handler: async (input, ctx) => {
      const project = ctx.prepared;
      const adapter = adapters[project.framework];
      if (adapter.planList === undefined || adapter.parseList === undefined) {
        return fail(
          'INVALID_ARGUMENT',
          `${project.framework} cannot list tests without running them (project '${project.id}')`,
          {
            hint: 'Use run_tests; its result names every failing test, and get_run pages through them.',
          },
        );
      }
      const scratchDir = await mkdtemp(path.join(tmpdir(), 'keel-test-list-'));
      try {
        const context = { project: project, scratchDir, nodePath: deps.nodePath };
        const plan = await adapter.planList(context);
        const proc = await runSandboxed(ctx, deps.sandbox, {
          command: plan.command,
          args: plan.args,
          cwd: project.dir,
          scratch: [scratchDir],
          timeoutMs: 240_000,
          timeoutHint: 'Run a narrower set with run_tests.',
          maxOutputBytes: 16 * 1024 * 1024,
          baseEnv: deps.env,
          envAllowlist: [...defaultEnvAllowlist, ...plan.envAllowlist],
          env: { CI: '1', NO_COLOR: '1', FORCE_COLOR: '0', ...plan.env },
        });
        const listed = await adapter.parseList(
          { exitCode: proc.exitCode, stdout: proc.stdout.text, stderr: proc.stderr.text },
          context,
        );
        const display = (file: string | undefined) =>
          file === undefined ? {} : { file: ctx.jail.display(file) };
        // Frameworks that collect files in parallel (vitest) print them in whichever order the workers
        // finish; a stable sort by file keeps pages of one listing consistent across calls, and each
        // file's tests in the order the framework gave (source order).
        const byFile = [...listed.tests].sort((a, b) =>
          a.file === b.file
            ? 0
            : a.file === undefined
              ? 1
              : b.file === undefined
                ? -1
                : a.file < b.file
                  ? -1
                  : 1,
        );
        const tests = byFile.map((t) => ({
          name: t.name,
          ...display(t.file),
          ...(t.line === undefined ? {} : { line: t.line }),
        }));
        const page = ctx.list(tests, { limit: input.limit, cursor: input.cursor });
        if (!page.ok) return page;
        return ok({
          project: {
            id: project.id,
            dir: project.displayDir,
            framework: project.framework,
          },
          tests: page.value.items,
          total: page.value.total,
          sandbox: proc.sandbox,
          errors: listed.errors.map((e) => ({ ...display(e.file), message: e.message })),
          ...(page.value.truncated === undefined ? {} : { truncated: page.value.truncated }),
        });
      } finally {
        await rm(scratchDir, { recursive: true, force: true });
      }
    },
  });
}
