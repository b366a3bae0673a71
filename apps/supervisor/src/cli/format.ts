import type { TaskRunV1 } from '@keel/contracts';
import { explainContext } from '../engine/context/explain.js';
import { callLabel } from '../observe/labels.js';
import type {
  ApprovalRecord,
  EventRecord,
  ModelCallRecord,
  TaskRecord,
  ToolCallRecord,
} from '../store/taskStore.js';

/** A recorded value as text: strings as they are, anything else as JSON. */
const text = (value: unknown): string => (typeof value === 'string' ? value : JSON.stringify(value ?? null));

const pad = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s.padEnd(n));

/**
 * A run record for a terminal. `asked` is the request a waiting or escalated run waits on: its time
 * is when the waiting began (the task was created earlier).
 */
export function formatRunSummary(run: TaskRunV1, asked?: ApprovalRecord): string {
  const failed = run.toolCalls.filter((c) => !c.ok).length;
  const since =
    asked === undefined
      ? `${run.status} since ${run.startedAt}`
      : `${run.status} since ${asked.requestedAt} (${asked.id}, asked at step ${asked.step}; the task started ${run.startedAt})`;
  return [
    `task      ${run.id} (${run.type}, ${run.mode})`,
    `status    ${run.status}${run.outcome.limit ? ` — limit ${run.outcome.limit}` : ''}${run.outcome.loop ? ` — loop ${run.outcome.loop}` : ''}`,
    `outcome   ${run.outcome.message}`,
    `steps     ${run.steps}`,
    `tokens    ${run.tokens.input} in + ${run.tokens.output} out`,
    `cost      $${run.costUsd.toFixed(4)}`,
    `tools     ${run.toolCalls.length} calls (${failed} failed or refused, ${run.toolCalls.filter((c) => c.irreversible).length} irreversible)`,
    `time      ${run.endedAt ? `${((Date.parse(run.endedAt) - Date.parse(run.startedAt)) / 1000).toFixed(1)} s` : since}`,
  ].join('\n');
}

export function formatRuns(tasks: TaskRecord[]): string {
  if (tasks.length === 0) return 'no tasks yet — `keel demo` runs one';
  const header = `${pad('TASK', 26)} ${pad('TYPE', 12)} ${pad('STATUS', 10)} ${pad('STEPS', 6)} ${pad('COST', 9)} CREATED`;
  return [
    header,
    ...tasks.map(
      (t) =>
        `${pad(t.id, 26)} ${pad(t.type, 12)} ${pad(t.status, 10)} ${pad(String(t.run?.steps ?? '-'), 6)} ${pad(t.run ? `$${t.run.costUsd.toFixed(4)}` : '-', 9)} ${t.createdAt}`,
    ),
  ].join('\n');
}

/** `keel show`: the run, then each step with its model call and the tool calls it made. */
export function formatShow(
  task: TaskRecord,
  models: ModelCallRecord[],
  tools: ToolCallRecord[],
  events: EventRecord[],
  now: number,
  asked?: ApprovalRecord,
): string {
  const lines = [
    `${task.title}`,
    task.run ? formatRunSummary(task.run, asked) : `status    ${task.status}`,
    '',
    'steps:',
  ];
  const toolsByStep = new Map<number, ToolCallRecord[]>();
  for (const call of tools.filter((t) => t.agent !== 'orchestrator'))
    toolsByStep.set(call.step, [...(toolsByStep.get(call.step) ?? []), call]);
  for (const call of models) {
    lines.push(
      `  ${String(call.step).padStart(3)} ${pad(call.agent, 12)} ${call.provider}:${call.requestedModel}  ${call.inputTokens}+${call.outputTokens} tokens (reserved ${call.reservedInputTokens}+${call.reservedOutputTokens})  ${call.latencyMs.toFixed(0)} ms${call.error ? `  ERROR ${call.error}` : ''}`,
    );
    const context = explainContext(call.request);
    if (context !== undefined) lines.push(`        ${context}`);
    for (const t of toolsByStep.get(call.step) ?? [])
      lines.push(
        `        → call ${t.callIndex + 1}  ${pad(`${t.server ? `${t.server}.` : ''}${t.tool}`, 34)} ${pad(t.outcome + (t.errorCode ? ` ${t.errorCode}` : ''), 26)} ${t.latencyMs.toFixed(0).padStart(6)} ms${t.irreversible ? '  irreversible' : ''}`,
      );
  }
  const orchestrator = tools.filter((t) => t.agent === 'orchestrator');
  if (orchestrator.length > 0) {
    lines.push('', 'orchestrator calls:');
    for (const t of orchestrator)
      lines.push(
        `        → ${callLabel(t.step, t.callIndex)}  ${pad(`${t.server}.${t.tool}`, 34)} ${pad(t.outcome + (t.errorCode ? ` ${t.errorCode}` : ''), 26)} ${t.latencyMs.toFixed(0).padStart(6)} ms`,
      );
  }
  const started = events.find((e) => e.type === 'task_started')?.data as
    { limits?: Record<string, number> } | undefined;
  if (task.run && started?.limits !== undefined) {
    const l = started.limits;
    const run = task.run;
    const seconds =
      ((run.endedAt === null ? now : Date.parse(run.endedAt)) - Date.parse(run.startedAt)) / 1000;
    lines.push(
      '',
      `limits used: steps ${run.steps}/${l['steps']} · tokens ${run.tokens.input + run.tokens.output}/${l['tokens']} · tool calls ${run.toolCalls.length}/${l['toolCalls']} · cost $${run.costUsd.toFixed(4)}/$${l['costUsd']} · wall clock ${seconds.toFixed(1)} s from the start (the limit, ${(Number(l['wallClockMs']) / 1000).toFixed(0)} s, counts running time only)`,
    );
  }
  const decisions = events.flatMap((e) => {
    const raw = (e.data ?? {}) as Record<string, unknown>;
    const value = (raw['value'] ?? {}) as Record<string, unknown>;
    const data = (key: string) => text(raw[key]);
    const has = (key: string) => raw[key] !== undefined && raw[key] !== null && raw[key] !== '';
    switch (e.type) {
      case 'contract_accepted':
        return [
          `${data('agent')} handed in ${data('contract')}${value['verdict'] !== undefined ? ` (${text(value['verdict'])})` : value['status'] !== undefined ? ` (${text(value['environment'])} ${text(value['status'])})` : ''}`,
        ];
      case 'contract_rejected':
        return [`${data('agent')}'s ${data('contract')} was refused (${data('code')})`];
      case 'tests':
        return [`tests ${data('outcome')} (run ${data('runId')})`];
      case 'tainted':
        return [`tainted by ${data('tool')} at step ${data('step')}`];
      case 'approval_requested':
        return [`${data('tool')} waits for approval ${data('approval')}`];
      case 'approval_granted':
      case 'approval_denied':
        return [
          `${data('approval')} ${e.type === 'approval_granted' ? 'approved' : 'denied'} by ${data('by')}${has('reason') ? `: ${data('reason')}` : ''}`,
        ];
      case 'approval_consumed':
        return [`${data('approval')} used by ${data('tool')} at ${data('slot')}`];
      case 'escalation_requested':
        return [`escalated as ${data('approval')}`];
      case 'escalation_decided':
        return [`${data('approval')} ${data('action')} by ${data('by')}`];
      case 'side_effect_cap':
        return [`${data('tool')} stopped by the ${data('limit')} cap`];
      case 'task_resumed':
        return [`resumed from step ${data('fromStep')}: ${data('reason')}`];
      default:
        return [];
    }
  });
  if (decisions.length > 0) lines.push('', 'decisions:', ...decisions.map((d) => `  ${d}`));
  return lines.join('\n');
}
