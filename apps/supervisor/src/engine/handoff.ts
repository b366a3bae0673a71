import type { ChangeV1, PlanV1, ReviewV1, TestV1 } from '@keel/contracts';
import type { TaskFile } from '../task/taskFile.js';

const block = (name: string, value: unknown) => `<${name}>\n${JSON.stringify(value, null, 2)}\n</${name}>`;

/** The messages the orchestrator hands each agent: the task and the contracts so far, as data. */
export const handoff = {
  planning: (task: TaskFile) =>
    `Task (${task.type}): ${task.title}\n\n${task.description}\n\nRead what you need, then call submit_plan.`,
  coding: (
    task: TaskFile,
    plan: PlanV1 | undefined,
    rework?: { change: ChangeV1; review?: ReviewV1; tests?: TestV1 },
  ) =>
    [
      `Task (${task.type}): ${task.title}`,
      plan === undefined ? task.description : block('plan', plan),
      rework?.review
        ? `The reviewer asked for changes to your last change:\n${block('review', rework.review)}`
        : '',
      rework?.tests
        ? `The tests failed after your last change (${rework.tests.totals.failed} of ${rework.tests.totals.total}):\n${block('test_run', rework.tests)}`
        : '',
      rework ? `Your last change:\n${block('change', rework.change)}` : '',
      'Make the change, commit it, then call submit_change.',
    ]
      .filter(Boolean)
      .join('\n\n'),
  review: (task: TaskFile, plan: PlanV1, change: ChangeV1, round: number) =>
    [
      `Task (${task.type}): ${task.title} — review round ${round}`,
      block('plan', plan),
      block('change', change),
      'Review the change against the plan, then call submit_review.',
    ].join('\n\n'),
  deploy: (task: TaskFile, environment: string, change: ChangeV1, tests: TestV1 | undefined) =>
    [
      `Task (${task.type}): ${task.title}`,
      `Deploy the change to the environment '${environment}'.`,
      block('change', change),
      tests ? block('test_run', tests) : '',
      'Plan the deploy, apply that plan, then call submit_deploy.',
    ]
      .filter(Boolean)
      .join('\n\n'),
};
