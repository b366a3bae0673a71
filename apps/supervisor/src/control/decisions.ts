import { userInfo } from 'node:os';
import { KeelError } from '@keel/kit/core';
import type { Clock } from '../clock.js';
import type { LoadedConfig } from '../config/load.js';
import type { Limits } from '../config/schema.js';
import type { ApprovalRecord, Decision, TaskStore } from '../store/taskStore.js';

/**
 * A human's answers to what waits — approve, deny, continue, abort — and lifting the global stop:
 * the one implementation the CLI and the web console both call, so a decision is recorded the same
 * way wherever it is made. Each returns the decided record or throws a KeelError naming the way out;
 * resuming the task afterwards is the caller's (it runs the task in its own process).
 */
async function decided(store: TaskStore, id: string, outcome: Decision): Promise<ApprovalRecord> {
  if (!outcome.ok)
    throw new KeelError(outcome.code === 'NOT_FOUND' ? 'NOT_FOUND' : 'CONFLICT', outcome.message, {
      hint:
        outcome.code === 'NOT_FOUND'
          ? `\`keel approvals\` lists what waits (${(await store.listApprovals({ status: 'pending' })).map((a) => a.id).join(', ') || 'nothing now'})`
          : outcome.code === 'EXPIRED'
            ? `the task asks again when it is resumed: \`keel resume ${outcome.approval?.taskId ?? 'TASK'}\``
            : 'a decision is final; the task goes on from it',
    });
  return outcome.approval;
}

/**
 * A decision that would resume a task whose config (or a prompt file) changed since it ran is refused
 * before it is recorded, naming what changed (the same check as `keel resume`): going on under the
 * new config is a choice made on purpose, with `--accept-changed-config`, and recorded. The CLI and
 * the console both ask here; `acceptCommand` is the command that makes that choice, `nameFile` adds
 * the config file to the message (the CLI's reader may have several).
 */
export async function refuseUnderChangedConfig(
  loaded: LoadedConfig,
  store: TaskStore,
  id: string,
  options: { acceptCommand: string; nameFile: boolean },
): Promise<void> {
  const approval = await store.getApproval(id);
  if (approval === undefined || approval.status !== 'pending') return;
  // Loaded on demand: the engine is heavy, and most control verbs never need it.
  const { configChangeOf } = await import('../engine/runTask.js');
  const change = await configChangeOf({ loaded, store }, approval.taskId);
  if (change === undefined) return;
  throw new KeelError(
    'PRECONDITION_FAILED',
    `${id} not decided: task ${approval.taskId} ran under another config: changed since: ${change.changed.join(', ')}${options.nameFile ? ` (${loaded.file})` : ''}`,
    {
      hint: `restore what changed, or decide and go on under the new config on purpose: ${options.acceptCommand}`,
      details: { ...change },
    },
  );
}

/** Ends a task whose request a human refused, without running it again. */
async function endRefused(
  store: TaskStore,
  approval: ApprovalRecord,
  message: string,
  now: Date,
): Promise<void> {
  const task = await store.getTask(approval.taskId);
  if (task === undefined || (task.status !== 'waiting' && task.status !== 'escalated')) return;
  const at = now.toISOString();
  const outcome = { message };
  await store.appendEvent(task.id, 'task_finished', { status: 'failed', outcome }, now);
  await store.updateTask(task.id, {
    status: 'failed',
    endedAt: at,
    ...(task.run === null ? {} : { run: { ...task.run, status: 'failed', endedAt: at, outcome } }),
  });
}

async function expectKind(store: TaskStore, id: string, kind: ApprovalRecord['kind']): Promise<void> {
  const current = await store.getApproval(id);
  if (current === undefined || current.kind === kind) return;
  throw current.kind === 'escalation'
    ? new KeelError('INVALID_ARGUMENT', `${id} is an escalation`, {
        hint: `\`keel continue ${id} --hint TEXT\` goes on, \`keel abort ${id} --reason TEXT\` ends the task`,
      })
    : new KeelError('INVALID_ARGUMENT', `${id} is an approval`, {
        hint: `\`keel approve ${id} --as NAME\` runs the call, \`keel deny ${id} --reason TEXT\` refuses it`,
      });
}

/**
 * Who is logged in where a decision is made (the `keel` process, or the console's): recorded beside
 * the name the approver gave (`--as`), which anyone can type.
 */
export const osUser = (): string => userInfo().username;

/** Approves one waiting irreversible call (exactly that call, once). */
export async function approveCall(
  store: TaskStore,
  id: string,
  by: string,
  reason: string | null,
  clock: Clock,
  os: string = osUser(),
): Promise<ApprovalRecord> {
  const now = new Date(clock.now());
  await expectKind(store, id, 'tool');
  const approval = await decided(
    store,
    id,
    await store.decideApproval(id, { approve: true, by, reason, now }),
  );
  await store.appendEvent(
    approval.taskId,
    'approval_granted',
    {
      approval: id,
      tool: approval.tool,
      argsSha256: approval.argsSha256,
      by,
      osUser: os,
      reason,
    },
    now,
  );
  return approval;
}

/** Refuses one waiting call; the task ends with the reason. */
export async function denyCall(
  store: TaskStore,
  id: string,
  by: string,
  reason: string,
  clock: Clock,
  os: string = osUser(),
): Promise<ApprovalRecord> {
  const now = new Date(clock.now());
  const approval = await decided(
    store,
    id,
    await store.decideApproval(id, { approve: false, by, reason, now }),
  );
  await store.appendEvent(
    approval.taskId,
    'approval_denied',
    {
      approval: id,
      tool: approval.tool,
      by,
      osUser: os,
      reason,
    },
    now,
  );
  await endRefused(
    store,
    approval,
    `${approval.tool ?? 'the call'} was denied by ${by} (${id}): ${reason}`,
    now,
  );
  return approval;
}

/** Continues an escalated task with raised limits or a hint the agent receives as a human message. */
export async function continueEscalation(
  store: TaskStore,
  id: string,
  by: string,
  raise: Partial<Limits>,
  hint: string | undefined,
  clock: Clock,
): Promise<ApprovalRecord> {
  const now = new Date(clock.now());
  await expectKind(store, id, 'escalation');
  const decision = { action: 'continue', raise, ...(hint === undefined ? {} : { hint }) };
  const approval = await decided(
    store,
    id,
    await store.decideApproval(id, { approve: true, by, reason: hint ?? null, decision, now }),
  );
  await store.appendEvent(approval.taskId, 'escalation_decided', { approval: id, by, ...decision }, now);
  return approval;
}

/** Ends an escalated task. */
export async function abortEscalation(
  store: TaskStore,
  id: string,
  by: string,
  reason: string,
  clock: Clock,
): Promise<ApprovalRecord> {
  const now = new Date(clock.now());
  const approval = await decided(
    store,
    id,
    await store.decideApproval(id, {
      approve: false,
      by,
      reason,
      decision: { action: 'abort' },
      now,
    }),
  );
  await store.appendEvent(
    approval.taskId,
    'escalation_decided',
    {
      approval: id,
      by,
      action: 'abort',
      reason,
    },
    now,
  );
  await endRefused(store, approval, `aborted by ${by} (${id}): ${reason}`, now);
  return approval;
}

/** Lifts the global stop; returns the one that was in force, if any. */
export async function liftGlobalStop(store: TaskStore): Promise<{ by: string; at: string } | null> {
  const stop = await store.getGlobalStop();
  await store.setGlobalStop(null);
  return stop;
}
