import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  canonicalJson,
  defaultEnvAllowlist,
  fail,
  KeelError,
  ok,
  sha256Hex,
  type Outcome as KitOutcome,
  type PathJail,
  type Sandbox,
  type ToolContext,
} from '@keel/kit';
import { adapters } from '../frameworks/registry.js';
import type { ParsedRun, PlanContext, Project, Selection, TestResult } from '../frameworks/types.js';
import { detectProjects, type ConfiguredProject } from '../projects/detect.js';
import { hashInputs } from './inputHash.js';
import type { ErrorRecord, FailureRecord, FileSummary, Outcome, RunRecord, Totals } from './record.js';
import { runSandboxed } from './sandboxed.js';
import { newRunId, type RunStore } from './store.js';

/** What the run tools share: the store, the server's environment, and the human-written project config. */
export interface RunnerDeps {
  store: RunStore;
  /** The server's environment; children see only allowlisted variables from it. */
  env: NodeJS.ProcessEnv;
  /** The node binary that runs JS frameworks and our reporters. */
  nodePath: string;
  configured: readonly ConfiguredProject[];
  /** Per stream, head + tail, kept with the run. */
  captureBytes: number;
  /** Real directories left out of the inputs hash: the server's own state, which every run changes. */
  excludeFromHash: readonly string[];
  /** Where every command this server starts runs: the code it executes is the agent's. */
  sandbox: Sandbox;
}

/** Variables every run gets, so runners behave as in CI: no colours, no watch mode, no prompts. */
const runEnv = { CI: '1', NO_COLOR: '1', FORCE_COLOR: '0' } as const;

/** The project an id or a directory names (the only one when omitted), or an error listing the known ones. */
export async function resolveProject(
  jail: PathJail,
  deps: RunnerDeps,
  projectId: string | undefined,
): Promise<KitOutcome<Project>> {
  const { projects } = await detectProjects(jail, deps.configured);
  const ids = projects.map((p) => p.id);
  if (projects.length === 0) {
    return fail('NOT_FOUND', 'no test project was found under the roots', {
      hint: 'A project is a directory with vitest/jest/mocha/tape/tap in package.json, a node --test script, any other scripts.test (run as npm test), pytest config, go.mod or Cargo.toml; or one declared with --command or --config.',
    });
  }
  if (projectId === undefined) {
    if (projects.length === 1) return ok(projects[0]!);
    return fail('INVALID_ARGUMENT', `${projects.length} test projects were found; say which one to run`, {
      hint: `Pass project as one of: ${ids.join(', ')}.`,
      details: { projects: ids },
    });
  }
  const exact = projects.find((p) => p.id === projectId);
  if (exact !== undefined) return ok(exact);
  const candidates = await projectsByDirectory(jail, projects, projectId);
  if (candidates.length > 1) {
    const named = candidates.map((p) => p.id);
    return fail('INVALID_ARGUMENT', `'${projectId}' names ${candidates.length} test projects`, {
      hint: `Pass project as one of: ${named.join(', ')}.`,
      details: { projects: named },
    });
  }
  const match = candidates[0];
  if (match === undefined) {
    return fail('NOT_FOUND', `project '${projectId}' was not found`, {
      hint: `Pass a project id, its directory (relative or absolute inside the roots) or a unique directory name. Known projects: ${ids.join(', ')} (detect_projects lists them).`,
      details: { projects: ids },
    });
  }
  return ok(match);
}

/**
 * The projects a directory names: a path (relative to the first root, or absolute inside the roots)
 * of a project directory, else a directory basename. Several when one directory holds several
 * frameworks or the basename repeats.
 */
async function projectsByDirectory(
  jail: PathJail,
  projects: readonly Project[],
  given: string,
): Promise<Project[]> {
  const resolved = await jail.resolve(given);
  if (resolved.ok && resolved.value.exists) {
    const inDir = projects.filter((p) => p.dir === resolved.value.real);
    if (inDir.length > 0) return inDir;
  }
  if (given.includes('/') || given.includes(path.sep)) return [];
  return projects.filter((p) => path.basename(p.dir) === given);
}

/** Checks that every selected file lies inside the project (they are already jailed by the kit). */
export function filesInProject(
  project: Project,
  files: readonly string[],
  display: (real: string) => string,
): KitOutcome<string[]> {
  for (const file of files) {
    if (file !== project.dir && !file.startsWith(`${project.dir}${path.sep}`)) {
      return fail('INVALID_ARGUMENT', `file '${display(file)}' is not inside project '${project.id}'`, {
        hint: `Pass files under ${project.displayDir}, or pick the project that holds them.`,
      });
    }
  }
  return ok([...files]);
}

export interface ExecuteOptions {
  timeoutMs: number;
  fresh: boolean;
  /** The selection as the caller gave it (root-relative), stored with the run. */
  shownSelection: RunRecord['selection'];
}

/**
 * Runs a project's tests (or returns the stored run for identical inputs) and turns what the
 * framework reported into a run record. A crash, a load error, a timeout or zero executed tests
 * each get their own outcome; only a run whose tests all ran and none failed is `passed`.
 */
export async function executeRun(
  ctx: ToolContext,
  deps: RunnerDeps,
  project: Project,
  selection: Selection,
  options: ExecuteOptions,
): Promise<{ record: RunRecord; cached: boolean }> {
  const adapter = adapters[project.framework];
  const scratchDir = await mkdtemp(path.join(tmpdir(), 'keel-test-run-'));
  const planContext: PlanContext = { project, scratchDir, nodePath: deps.nodePath };
  try {
    const confinement = await deps.sandbox.status();
    if (!confinement.ok) {
      const { code, message, hint, retryable } = confinement.error;
      throw new KeelError(code, message, { hint, retryable });
    }
    const plan = await adapter.planRun(selection, planContext);
    const envAllowlist = [...defaultEnvAllowlist, ...plan.envAllowlist];
    const env = { ...runEnv, ...plan.env };
    // Report paths live in the per-run scratch dir; they must not make every run's key unique.
    const stable = (value: string) => value.replaceAll(scratchDir, '<scratch>');
    const inputs = await hashInputs(
      project.dir,
      ctx.jail,
      async (args, cwd) => {
        const result = await runSandboxed(ctx, deps.sandbox, {
          command: 'git',
          args,
          cwd,
          timeoutMs: 30_000,
          // A tree git cannot hash in time is simply not cached.
          onTimeout: 'result',
          maxOutputBytes: 64 * 1024 * 1024,
          baseEnv: deps.env,
        });
        return { exitCode: result.exitCode, stdout: result.stdout.text };
      },
      deps.excludeFromHash,
    );
    const cacheKey = sha256Hex(
      canonicalJson({
        v: 1,
        framework: project.framework,
        dir: project.dir,
        command: plan.command,
        args: plan.args.map(stable),
        env: Object.fromEntries(Object.entries(env).map(([k, v]) => [k, stable(v)])),
        serverEnv: Object.fromEntries(envAllowlist.map((name) => [name, deps.env[name] ?? null])),
        inputs: inputs?.hash ?? null,
        // A run outside the sandbox is never served as if it had run inside (nor the other way round).
        sandbox: confinement.value.kind,
      }),
    );
    const cacheable = inputs !== undefined;
    if (!cacheable)
      ctx.logger.info('the tree is too big to hash; this run is not cached', { project: project.id });
    if (!options.fresh && cacheable) {
      const stored = await deps.store.lookup(cacheKey);
      if (stored !== undefined) return { record: stored, cached: true };
    }

    await adapter.beforeRun?.(planContext);
    const started = Date.now();
    let outputBytes = 0;
    let tick = 0;
    ctx.progress(tick, undefined, `running ${project.id}`);
    const heartbeat = setInterval(() => {
      tick++;
      ctx.progress(
        tick,
        undefined,
        `${project.id}: running for ${Math.round((Date.now() - started) / 1000)} s, ${outputBytes} bytes of output`,
      );
    }, 1000);
    heartbeat.unref();
    let proc;
    try {
      proc = await runSandboxed(ctx, deps.sandbox, {
        command: plan.command,
        args: plan.args,
        cwd: project.dir,
        scratch: [scratchDir],
        timeoutMs: options.timeoutMs,
        // A timed-out run is a result: its partial output and load errors are what the caller needs.
        onTimeout: 'result',
        maxOutputBytes: deps.captureBytes,
        baseEnv: deps.env,
        envAllowlist,
        env,
        onStdout: (chunk) => (outputBytes += chunk.length),
        onStderr: (chunk) => (outputBytes += chunk.length),
      });
    } finally {
      clearInterval(heartbeat);
    }
    const raw = { exitCode: proc.exitCode, stdout: proc.stdout.text, stderr: proc.stderr.text };
    const parsed = await adapter.parseRun(raw, planContext);
    const display = (real: string) => ctx.jail.display(real);
    const record = buildRecord({
      project,
      parsed,
      display,
      timedOut: proc.timedOut,
      timeoutMs: options.timeoutMs,
      exitCode: proc.exitCode,
      signal: proc.signal,
      output: proc.stderr.text.trim() === '' ? proc.stdout.text : proc.stderr.text,
      stderr: proc.stderr.text,
    });
    const full: RunRecord = {
      runId: newRunId(),
      createdAt: new Date().toISOString(),
      cacheKey,
      project: { id: project.id, dir: project.displayDir, framework: project.framework },
      selection: options.shownSelection,
      ...record,
      durationMs: proc.durationMs,
      exitCode: proc.exitCode,
      command: [path.basename(plan.command), ...plan.args.map(stable)],
      sandbox: proc.sandbox,
      stdout: proc.stdout.text,
      stderr: proc.stderr.text,
    };
    ctx.progress(
      tick + 1,
      undefined,
      `${project.id}: ${full.outcome} (${full.totals.passed} passed, ${full.totals.failed} failed)`,
    );
    // A timeout says more about the moment than about the tree, so it is kept but never served from the cache.
    await deps.store.save(full, { cacheable: cacheable && full.outcome !== 'timeout' });
    return { record: full, cached: false };
  } finally {
    await rm(scratchDir, { recursive: true, force: true });
  }
}

interface BuildInput {
  project: Project;
  parsed: ParsedRun;
  display: (real: string) => string;
  timedOut: boolean;
  timeoutMs: number;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** The runner's stderr (else stdout), whose last lines explain a crash. */
  output?: string;
  /** The runner's stderr alone: what a run that hung after failing to load complained of. */
  stderr?: string;
}

function crashNote(output: string | undefined): ErrorRecord[] {
  const tail = (output ?? '').trim().split('\n').slice(-15).join('\n');
  return tail === '' ? [] : [{ message: tail }];
}

type Built = Pick<
  RunRecord,
  'outcome' | 'totals' | 'failures' | 'failedSelectors' | 'passedSelectors' | 'errors' | 'files'
> & { reason?: string };

/** Decides the outcome; exported for unit tests of the rules. */
export function buildRecord(input: BuildInput): Built {
  const { parsed, display } = input;
  const totals: Totals = { total: 0, passed: 0, failed: 0, skipped: 0 };
  const failures: FailureRecord[] = [];
  const failedSelectors: RunRecord['failedSelectors'] = [];
  const passedSelectors: string[] = [];
  const byFile = new Map<string, FileSummary>();
  // Frameworks run files in parallel and report in finishing order; sort so a run reads the same every time.
  const ordered = [...parsed.tests].sort(
    (a, b) =>
      (a.file ?? '').localeCompare(b.file ?? '') ||
      (a.line ?? 0) - (b.line ?? 0) ||
      a.name.localeCompare(b.name),
  );
  for (const test of ordered) {
    totals.total++;
    totals[test.status]++;
    const file = test.file === undefined ? undefined : display(test.file);
    if (file !== undefined) {
      const summary = byFile.get(file) ?? { file, total: 0, passed: 0, failed: 0, skipped: 0 };
      summary.total++;
      summary[test.status]++;
      byFile.set(file, summary);
    }
    if (test.status === 'passed') passedSelectors.push(test.selector ?? test.name);
    if (test.status === 'failed') {
      failures.push(failureOf(test, display));
      failedSelectors.push({
        name: test.selector ?? test.name,
        ...(test.file === undefined ? {} : { file: test.file }),
      });
    }
  }
  const errors: ErrorRecord[] = parsed.loadErrors.map((e) => ({
    ...(e.file === undefined ? {} : { file: display(e.file) }),
    message: e.message,
    ...(e.stack === undefined ? {} : { stack: e.stack }),
  }));
  const files = [...byFile.values()].sort((a, b) => b.failed - a.failed || a.file.localeCompare(b.file));
  const base = { totals, failures, failedSelectors, passedSelectors, errors, files };
  const executed = totals.passed + totals.failed;
  if (input.timedOut) {
    return {
      ...base,
      // The report is never written when the run is killed; a load error is then only on stderr.
      errors: errors.length > 0 ? errors : crashNote(input.stderr),
      outcome: 'timeout',
      reason: `the run did not finish within ${input.timeoutMs} ms; its process group was killed`,
    };
  }
  if (!parsed.reportFound) {
    const signal = input.signal === null ? '' : ` (signal ${input.signal})`;
    return {
      ...base,
      errors: errors.length > 0 ? errors : crashNote(input.output),
      outcome: 'error',
      reason: `the runner exited with code ${input.exitCode}${signal} without reporting results`,
    };
  }
  if (errors.length > 0) {
    return { ...base, outcome: 'error', reason: `${errors.length} suite(s) failed to load or compile` };
  }
  if (executed === 0 && input.exitCode !== 0 && parsed.noTestsFound !== true) {
    return {
      ...base,
      errors: [...errors, ...crashNote(input.output)],
      outcome: 'error',
      reason: `the runner exited with code ${input.exitCode} and ran no test`,
    };
  }
  if (executed === 0) {
    return {
      ...base,
      outcome: 'no_tests',
      reason: totals.skipped > 0 ? `all ${totals.skipped} tests were skipped` : 'no test was executed',
    };
  }
  if (totals.failed > 0) return { ...base, outcome: 'failed' };
  if (input.exitCode !== 0) {
    return {
      ...base,
      outcome: 'error',
      reason: `every test passed but the runner exited with code ${input.exitCode}`,
    };
  }
  return { ...base, outcome: 'passed' };
}

function failureOf(test: TestResult, display: (real: string) => string): FailureRecord {
  const failure = test.failure;
  const file = failure?.file ?? test.file;
  const line = failure?.file !== undefined ? failure.line : test.line;
  return {
    name: test.name,
    ...(file === undefined ? {} : { file: display(file) }),
    ...(line === undefined ? {} : { line }),
    message: failure?.message ?? 'test failed',
    ...(failure?.expected === undefined ? {} : { expected: failure.expected }),
    ...(failure?.actual === undefined ? {} : { actual: failure.actual }),
    ...(failure?.stack === undefined ? {} : { stack: failure.stack }),
  };
}

/**
 * The selection that re-runs exactly the failed tests of a stored run: their files and exact names.
 * cargo cannot tell which target a test came from, so it keeps the original run's files (targets)
 * and narrows by name; pytest node ids carry their file already.
 */
export async function failedSelection(
  ctx: ToolContext,
  record: RunRecord,
  project: Project,
): Promise<KitOutcome<Selection>> {
  const files = new Set<string>();
  if (project.framework === 'cargo') {
    for (const file of record.selection.files) {
      const resolved = await ctx.jail.resolve(file);
      if (!resolved.ok) return resolved;
      files.add(resolved.value.real);
    }
  } else if (project.framework !== 'pytest') {
    for (const selector of record.failedSelectors) {
      if (selector.file === undefined) continue;
      const resolved = await ctx.jail.resolve(selector.file);
      if (!resolved.ok) return resolved;
      files.add(resolved.value.real);
    }
  }
  return ok({
    files: [...files].sort(),
    exactNames: record.failedSelectors.map((s) => ({
      name: s.name,
      ...(s.file === undefined ? {} : { file: s.file }),
    })),
  });
}

export type { Outcome };
