import type { TaskRunV1 } from '@keel/contracts';
import type { ModelCallRecord, TaskRecord, ToolCallRecord } from '../store/taskStore.js';

const pad = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s.padEnd(n));

export function formatRunSummary(run: TaskRunV1): string {
  const failed = run.toolCalls.filter((c) => !c.ok).length;
  return [
    `task      ${run.id} (${run.type}, ${run.mode})`,
    `status    ${run.status}${run.outcome.limit ? ` — limit ${run.outcome.limit}` : ''}${run.outcome.loop ? ` — loop ${run.outcome.loop}` : ''}`,
    `outcome   ${run.outcome.message}`,
    `steps     ${run.steps}`,
    `tokens    ${run.tokens.input} in + ${run.tokens.output} out`,
    `cost      $${run.costUsd.toFixed(4)}`,
    `tools     ${run.toolCalls.length} calls (${failed} failed or refused, ${run.toolCalls.filter((c) => c.irreversible).length} irreversible)`,
    `time      ${run.endedAt ? `${((Date.parse(run.endedAt) - Date.parse(run.startedAt)) / 1000).toFixed(1)} s` : `${run.status} since ${run.startedAt}`}`,
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
export function formatShow(task: TaskRecord, models: ModelCallRecord[], tools: ToolCallRecord[]): string {
  const lines = [
    `${task.title}`,
    task.run ? formatRunSummary(task.run) : `status    ${task.status}`,
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
    for (const t of toolsByStep.get(call.step) ?? [])
      lines.push(
        `        → ${pad(`${t.server ? `${t.server}.` : ''}${t.tool}`, 34)} ${pad(t.outcome + (t.errorCode ? ` ${t.errorCode}` : ''), 26)} ${t.latencyMs.toFixed(0).padStart(6)} ms${t.irreversible ? '  irreversible' : ''}`,
      );
  }
  const orchestrator = tools.filter((t) => t.agent === 'orchestrator');
  if (orchestrator.length > 0) {
    lines.push('', 'orchestrator calls:');
    for (const t of orchestrator)
      lines.push(
        `        → ${pad(`${t.server}.${t.tool}`, 34)} ${pad(t.outcome + (t.errorCode ? ` ${t.errorCode}` : ''), 26)} ${t.latencyMs.toFixed(0).padStart(6)} ms`,
      );
  }
  if (task.run) {
    const limits = (task.spec as { limits?: Record<string, number> }).limits;
    if (limits && Object.keys(limits).length > 0) lines.push('', `task limits: ${JSON.stringify(limits)}`);
  }
  return lines.join('\n');
}
