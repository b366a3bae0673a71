import {
  defineToolWith,
  ok,
  type AnyInputSchema,
  type AnyObjectSchema,
  type AnyTool,
  type PathDeclaration,
  type PathMode,
  type PrepareStep,
  type ToolSpec,
} from '@keel/kit';
import type { Project } from '../frameworks/types.js';
import { resolveProject, type RunnerDeps } from '../runs/execute.js';
import { loadRun } from '../runs/store.js';

/** A test-runner tool as the server holds it: its handler may read the project the prepare step resolved. */
export type TestRunnerTool = AnyTool<Project>;

/**
 * Declares a tool on one project: its handler gets the project, resolved once by the server's prepare
 * step, as `ctx.prepared` — from the `project` argument, or from the stored run a `runId` names.
 */
export function defineProjectTool<
  TInput extends AnyInputSchema,
  TOutput extends AnyObjectSchema,
  TPaths extends PathDeclaration<TInput> = Record<never, PathMode>,
>(spec: ToolSpec<TInput, TOutput, TPaths, Project>): TestRunnerTool {
  return defineToolWith<Project>()(spec);
}

/**
 * The test-runner's prepare step: for every tool declared with `defineProjectTool`, the project of
 * the call — the run's project when it names a `runId`, else its `project` argument (may be omitted
 * when the roots hold one) — is detected and resolved before the handler runs.
 */
export function testRunnerPrepare(deps: RunnerDeps): PrepareStep<Project> {
  return async (call) => {
    if (!call.readsPrepared) return ok(undefined);
    const runId = call.input['runId'];
    if (typeof runId === 'string') {
      const run = await loadRun(deps.store, runId);
      if (!run.ok) return run;
      return await resolveProject(call.jail, deps, run.value.project.id);
    }
    const project = call.input['project'];
    return await resolveProject(call.jail, deps, typeof project === 'string' ? project : undefined);
  };
}
