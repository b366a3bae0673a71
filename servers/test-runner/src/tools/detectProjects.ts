import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { budgetArg, cursorArg, defineTool, KeelError, ok, truncationSchema } from '@keel/kit';
import * as z from 'zod';
import type { TestRunnerTool } from '../projects/prepare.js';
import { adapters } from '../frameworks/registry.js';
import { frameworkNames } from '../frameworks/types.js';
import { detectProjects } from '../projects/detect.js';
import { resolveProject, type RunnerDeps } from '../runs/execute.js';
import { sandboxSchema } from '../runs/present.js';
import { describeSandbox, runSandboxed } from '../runs/sandboxed.js';

/** `detect_projects`: the test projects under the roots, with framework, version and the command a run uses. */
export function detectProjectsTool(deps: RunnerDeps): TestRunnerTool {
  return defineTool({
    name: 'detect_projects',
    title: 'Detect test projects',
    description:
      'Finds the test projects under the roots (vitest, jest, node:test, mocha, tape, node-tap, pytest, go, cargo, a package.json test script run as npm test, or a declared command; several per monorepo) and says for each the framework, its installed version, what gave it away, the reporter read, and the command run_tests will run; and whether runs are sandboxed.',
    input: z.object({
      project: z
        .string()
        .optional()
        .describe(
          'Only the project run_tests would run for this id or directory; an error says why none would. Omitted: every project.',
        ),
      versions: z
        .boolean()
        .default(true)
        .describe('false: skip the installed-version probes (no process is started).'),
      limit: budgetArg({ default: 50, max: 500, unit: 'items', what: 'projects' }),
      cursor: cursorArg,
    }),
    output: z.object({
      projects: z.array(
        z.object({
          id: z.string().describe('Pass as `project` to the other tools.'),
          dir: z.string(),
          framework: z.enum(frameworkNames),
          version: z.string().optional().describe('Installed version, when it could be found.'),
          detectedBy: z.string().describe('The file that identified it.'),
          reporter: z.string().describe('The machine-readable output that is read.'),
          command: z.array(z.string()).describe('What a full run executes (report files under <scratch>).'),
          problem: z
            .string()
            .optional()
            .describe('Why it cannot run as is (e.g. the framework is not installed).'),
        }),
      ),
      total: z.number(),
      sandbox: sandboxSchema.or(
        z.object({
          kind: z.literal('refused'),
          reason: z.string().describe('Why runs will be refused, and how to allow them.'),
        }),
      ),
      capped: z
        .boolean()
        .describe('True when the directory walk hit its cap; deeper projects may be missing.'),
      truncated: truncationSchema.optional(),
    }),
    effect: 'read',
    cursorIgnores: ['limit'],
    render: (out) =>
      [
        ...(out.projects.length === 0
          ? ['no test projects found']
          : out.projects.map(
              (p) =>
                `${p.id} ${p.version ?? '?'} — ${p.command.join(' ')}${p.problem === undefined ? '' : ` (${p.problem})`}`,
            )),
        out.sandbox.kind === 'refused' ? `REFUSED: ${out.sandbox.reason}` : describeSandbox(out.sandbox),
      ].join('\n'),
    handler: async (input, ctx) => {
      const detection = await detectProjects(ctx.jail, deps.configured);
      // The same choice run_tests makes, so a caller can check before a task that its runs will find one.
      const chosen =
        input.project === undefined ? undefined : await resolveProject(ctx.jail, deps, input.project);
      if (chosen !== undefined && !chosen.ok) return chosen;
      const listed = chosen === undefined ? detection.projects : [chosen.value];
      const page = ctx.list(listed, { limit: input.limit, cursor: input.cursor });
      if (!page.ok) return page;
      const confinement = await deps.sandbox.status();
      const probe = async (command: string, args: readonly string[], cwd: string) => {
        const result = await runSandboxed(ctx, deps.sandbox, {
          command,
          args,
          cwd,
          timeoutMs: 20_000,
          // A probe that hangs is reported as the project's problem, not as a failed call.
          onTimeout: 'result',
          maxOutputBytes: 64 * 1024,
          baseEnv: deps.env,
        });
        return { exitCode: result.exitCode, stdout: result.stdout.text, stderr: result.stderr.text };
      };
      const projects = [];
      for (const project of page.value.items) {
        const adapter = adapters[project.framework];
        const scratchDir = await mkdtemp(path.join(tmpdir(), 'keel-test-detect-'));
        const context = { project, scratchDir, nodePath: deps.nodePath };
        let command: string[] = [];
        let problem: string | undefined;
        let version: string | undefined;
        try {
          const plan = await adapter.planRun({ files: [] }, context);
          command = [
            path.basename(plan.command),
            ...plan.args.map((a) => a.replaceAll(scratchDir, '<scratch>')),
          ];
          if (input.versions) version = await adapter.version(context, probe).catch(() => undefined);
        } catch (error) {
          if (!(error instanceof KeelError)) throw error;
          problem = error.message;
        } finally {
          await rm(scratchDir, { recursive: true, force: true });
        }
        projects.push({
          id: project.id,
          dir: project.displayDir,
          framework: project.framework,
          ...(version === undefined ? {} : { version }),
          detectedBy: project.detectedBy,
          reporter: adapter.reporter,
          command,
          ...(problem === undefined ? {} : { problem }),
        });
      }
      return ok({
        projects,
        total: page.value.total,
        // Said here too, so a caller can check before a task that its test runs will be allowed.
        sandbox: confinement.ok
          ? confinement.value
          : {
              kind: 'refused' as const,
              reason: `${confinement.error.message}${confinement.error.hint === undefined ? '' : ` — ${confinement.error.hint}`}`,
            },
        capped: detection.capped,
        ...(page.value.truncated === undefined ? {} : { truncated: page.value.truncated }),
      });
    },
  });
}
