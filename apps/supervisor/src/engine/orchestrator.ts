import type { ChangeV1, DeployV1, PlanV1, ReviewV1, TestV1 } from '@keel/contracts';
import { checkContract } from '@keel/contracts';
import type { AgentConfig, AgentRole, Price } from '../config/schema.js';
import { roles } from '../agents/roles.js';
import type { CatalogTool } from '../mcp/servers.js';
import type { Model } from '../models/model.js';
import type { TaskFile } from '../task/taskFile.js';
import { runAgent } from './agentLoop.js';
import { handoff } from './handoff.js';
import type { TaskSession } from './session.js';
import { done, stopped, type Step } from './stop.js';

export interface AgentSetup {
  config: AgentConfig;
  model: Model;
  price: Price | undefined;
  scope: Map<string, CatalogTool>;
  system: string;
}

export interface FlowResult {
  plan?: PlanV1;
  change?: ChangeV1;
  reviews: ReviewV1[];
  tests: TestV1[];
  deploys: DeployV1[];
}

export interface FlowEnd {
  status: 'succeeded' | 'failed';
  message: string;
}

/** Maps the test-runner's run_tests result to test.v1. */
export function toTestContract(structured: Record<string, unknown>): Step<TestV1> {
  const project = structured['project'] as { id?: string } | undefined;
  const failures = (structured['failures'] as Array<Record<string, unknown>> | undefined) ?? [];
  const value = {
    version: 'test.v1',
    runId: structured['runId'],
    project: project?.id,
    outcome: structured['outcome'],
    totals: structured['totals'],
    durationMs: Math.round(Number(structured['durationMs'] ?? 0)),
    failures: failures.slice(0, 50).map((f) => ({
      name: String(f['name']).slice(0, 2000),
      ...(typeof f['file'] === 'string' ? { file: f['file'] } : {}),
      ...(typeof f['line'] === 'number' && f['line'] > 0 ? { line: f['line'] } : {}),
      message: (typeof f['message'] === 'string' ? f['message'] : '').slice(0, 4000),
    })),
  };
  const check = checkContract('test.v1', value);
  if (!check.ok)
    return stopped({
      status: 'error',
      message: `the test-runner's result does not map to test.v1: ${check.message}`,
    });
  return done(check.value);
}

/**
 * The orchestrated flow: plan → code → review (rework rounds) → tests (run by the orchestrator;
 * failures back to coding) → deploy → outcome. Agents never call each other; every hand-off is a
 * validated contract, and every round is bounded by the task's limits.
 */
export async function orchestrate(
  session: TaskSession,
  task: TaskFile,
  agents: Partial<Record<AgentRole | 'single', AgentSetup>>,
  testRunner: { scope: Map<string, CatalogTool> } | undefined,
  flow: FlowResult,
): Promise<Step<FlowEnd>> {
  // Read live: a human who continues an escalated round limit raises it.
  const limits = () => session.budget.limits;
  const invoke = async <T>(role: AgentRole | 'single', input: string): Promise<Step<T>> => {
    const setup = agents[role];
    if (setup === undefined) return stopped({ status: 'error', message: `no ${role} agent is configured` });
    const spec = role === 'single' ? roles.coding : roles[role];
    // Single mode is one coding agent with every tool: it is recorded (and scripted) as `coding`.
    const run = session.startAgent(
      role === 'single' ? 'coding' : role,
      setup.config,
      setup.model,
      setup.price,
      setup.scope,
    );
    return (await runAgent(session, run, spec, setup.system, input)) as Step<T>;
  };

  // Before any model call: the tests the task will need can be found, or it ends here, not after the work.
  if (task.tests !== null) {
    if (testRunner === undefined) return noTestRunner();
    const found = await findTests(session, testRunner.scope, task);
    if (!found.ok) return found;
  }
  if (task.mode === 'orchestrated') {
    const plan = await invoke<PlanV1>('planning', handoff.planning(task));
    if (!plan.ok) return plan;
    flow.plan = plan.value;
  }
  const coder: AgentRole | 'single' = task.mode === 'single' ? 'single' : 'coding';
  let rework: Parameters<typeof handoff.coding>[2];
  let rounds = 0;
  let testRuns = 0;
  for (;;) {
    rounds++;
    const change = await invoke<ChangeV1>(coder, handoff.coding(task, flow.plan, rework));
    if (!change.ok) return change;
    flow.change = change.value;
    if (task.mode === 'orchestrated') {
      const review = await invoke<ReviewV1>('review', handoff.review(task, flow.plan!, change.value, rounds));
      if (!review.ok) return review;
      flow.reviews.push(review.value);
      const comments = review.value.comments.length;
      session.progress(
        'note',
        'orchestrator',
        `review ${rounds}: ${review.value.verdict}${comments === 0 ? '' : ` (${comments} comment${comments === 1 ? '' : 's'})`}`,
      );
      if (review.value.verdict === 'request_changes') {
        if (rounds >= limits().reviewRounds) {
          const escalation = await session.escalate({
            status: 'limit',
            limit: 'review_rounds',
            message: `the reviewer still requests changes after ${rounds} round(s) (limit ${limits().reviewRounds})`,
          });
          if (!escalation.ok) return escalation;
        }
        rework = { change: change.value, review: review.value };
        continue;
      }
    }
    if (task.tests === null) break;
    if (testRunner === undefined) return noTestRunner();
    testRuns++;
    const tests = await runTests(session, testRunner.scope, task, testRuns);
    if (!tests.ok) return tests;
    flow.tests.push(tests.value);
    if (tests.value.outcome === 'passed') break;
    for (const [used, limit, kind, what] of [
      [
        testRuns,
        limits().testRounds,
        'test_rounds',
        `tests still ${tests.value.outcome} after ${testRuns} run(s)`,
      ],
      [
        rounds,
        limits().reviewRounds,
        'review_rounds',
        `tests ${tests.value.outcome} and ${rounds} coding round(s) used`,
      ],
    ] as const) {
      if (used < limit) continue;
      const escalation = await session.escalate({
        status: 'limit',
        limit: kind,
        message: `${what} (limit ${limit})`,
      });
      if (!escalation.ok) return escalation;
    }
    rework = { change: change.value, tests: tests.value };
  }
  for (const environment of task.deploy?.environments ?? []) {
    const deploy = await invoke<DeployV1>(
      'deploy',
      handoff.deploy(task, environment, flow.change!, flow.tests.at(-1)),
    );
    if (!deploy.ok) return deploy;
    flow.deploys.push(deploy.value);
    if (deploy.value.status !== 'live')
      return done({
        status: 'failed',
        message: `deploy to ${deploy.value.environment} ended ${deploy.value.status}${deploy.value.reason ? `: ${deploy.value.reason}` : ''}`,
      });
  }
  const last = flow.tests.at(-1);
  return done({
    status: 'succeeded',
    message: [
      `${rounds} coding round(s)`,
      last ? `tests ${last.outcome} (${last.totals.passed}/${last.totals.total})` : 'no tests',
      flow.deploys.length === 0
        ? 'no deploy'
        : flow.deploys.map((d) => `${d.environment} ${d.status} (${d.releaseId ?? 'no release'})`).join(', '),
    ].join(', '),
  });
}

const noTestRunner = () =>
  stopped({ status: 'error', message: 'the task asks for tests but no configured server has run_tests' });

/** The orchestrator's own calls (it has no model): they hang under the task's root span. */
const orchestratorRun = (session: TaskSession, scope: Map<string, CatalogTool>, toModel: boolean) =>
  session.startAgent(
    'orchestrator',
    { model: '', tools: {}, maxTokens: 1, limits: {}, context: { target: 0.6, cutTo: 0.4 } },
    noModel,
    undefined,
    scope,
    { span: false, toModel },
  );

/**
 * Asks the test-runner, before any work, for the project run_tests will run — the same choice, without
 * starting a process (no version probes) — and ends the task with its answer when there is none: no
 * project, several and none named, the named one missing, or runs the sandbox would refuse.
 */
async function findTests(
  session: TaskSession,
  scope: Map<string, CatalogTool>,
  task: TaskFile,
): Promise<Step<void>> {
  if (![...scope.values()].some((t) => t.name === 'detect_projects')) return done(undefined);
  // What it finds is read by the harness alone: no model sees it, so it cannot taint the task.
  const run = orchestratorRun(session, scope, false);
  const project = task.tests?.project;
  const answer = await session.tool(
    run,
    {
      id: 'orchestrator-tests-0',
      name: 'detect_projects',
      arguments: { ...(project === undefined ? {} : { project }), versions: false },
    },
    1000,
  );
  run.span?.end();
  if (!answer.ok) return answer;
  const result = answer.value.result;
  const cannot = (why: string) =>
    stopped({ status: 'error', message: `the task needs tests, and they cannot be run: ${why}` });
  if (result === undefined || result.isError || result.structured === undefined)
    return cannot(
      `${result?.error?.message ?? 'detect_projects gave no result'}${result?.error?.hint ? ` (${result.error.hint})` : ''}`,
    );
  const found = result.structured as {
    projects?: Array<{ id: string }>;
    total?: number;
    sandbox?: { kind: string; reason?: string };
  };
  const ids = (found.projects ?? []).map((p) => p.id);
  if (found.total === 0)
    return cannot(
      'no test project was found in the workspace (add a test script, a framework config or a declared --command to the test-runner; or set tests: null in the task file)',
    );
  if (project === undefined && (found.total ?? 0) > 1)
    return cannot(
      `${found.total} test projects were found; name one as tests.project in the task file: ${ids.join(', ')}`,
    );
  if (found.sandbox?.kind === 'refused') return cannot(`test runs would be refused: ${found.sandbox.reason}`);
  return done(undefined);
}

async function runTests(
  session: TaskSession,
  scope: Map<string, CatalogTool>,
  task: TaskFile,
  round: number,
): Promise<Step<TestV1>> {
  // Its result reaches the coding agent (a failed run's test.v1): observed as any model-bound result.
  const run = orchestratorRun(session, scope, true);
  const args = { ...(task.tests?.project === undefined ? {} : { project: task.tests.project }), fresh: true };
  // Orchestrator calls are numbered apart from the model's calls of the same step.
  const answer = await session.tool(
    run,
    { id: `orchestrator-tests-${round}`, name: 'run_tests', arguments: args },
    1000 + round,
  );
  run.span?.end();
  if (!answer.ok) return answer;
  const result = answer.value.result;
  if (result === undefined || result.isError || result.structured === undefined)
    return stopped({
      status: 'error',
      message: `run_tests failed: ${result?.error?.message ?? 'no result'}${result?.error?.hint ? ` (${result.error.hint})` : ''}`,
    });
  const tests = toTestContract(result.structured);
  if (tests.ok) {
    session.addContract(tests.value);
    await session.event('tests', {
      round,
      outcome: tests.value.outcome,
      totals: tests.value.totals,
      runId: tests.value.runId,
    });
    session.progress(
      'note',
      'orchestrator',
      `tests ${tests.value.outcome}: ${tests.value.totals.passed}/${tests.value.totals.total} passed`,
    );
  }
  return tests;
}

const noModel: Model = {
  provider: 'none',
  model: 'none',
  generate: () => Promise.reject(new Error('the orchestrator has no model')),
};
