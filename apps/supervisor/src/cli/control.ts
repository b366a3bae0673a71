import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { KeelError } from '@keel/kit';
import { generateApprovalKeyPair } from '@keel/kit/approval';
import type { TaskRunV1 } from '@keel/contracts';
import { limitsSchema, type Limits } from '../config/schema.js';
import {
  abortEscalation,
  approveCall,
  continueEscalation,
  denyCall,
  liftGlobalStop,
} from '../control/decisions.js';
import { killAll, killTask, type KillResult } from '../control/kill.js';
import type { ApprovalRecord } from '../store/taskStore.js';
import type { CliContext } from './main.js';

/** How to invoke keel in a printed hint: `pnpm keel` when this run came through the repo's script. */
const keelCommand = (env: NodeJS.ProcessEnv) =>
  env['npm_lifecycle_event'] === 'keel' ? 'pnpm keel' : 'keel';

/** What a waiting or escalated run's reader should type next. */
export function howToAnswer(run: TaskRunV1, env: NodeJS.ProcessEnv): string {
  const keel = keelCommand(env);
  const id = /(ap-[0-9a-f]{10}|es-[0-9a-f]{10})/.exec(run.outcome.message)?.[1];
  if (id === undefined) return `${keel} approvals   lists what waits for a human`;
  return id.startsWith('ap-')
    ? `a human decides:\n  ${keel} approve ${id} --as NAME              approve it; the task resumes and finishes\n  ${keel} deny ${id} --reason TEXT             refuse it; the task ends with the reason`
    : `a human decides:\n  ${keel} continue ${id} [--raise steps=N] [--hint TEXT]   go on, with raised limits or a hint\n  ${keel} abort ${id} --reason TEXT                      end the task`;
}

function formatApprovals(approvals: ApprovalRecord[]): string {
  if (approvals.length === 0) return 'nothing waits for a human';
  return approvals
    .map((a) =>
      [
        `${a.id}  ${a.kind === 'tool' ? 'approval' : 'escalation'}  ${a.status}  task ${a.taskId}  step ${a.step}  expires ${a.expiresAt}`,
        `    ${a.summary}`,
        ...a.reasons.map((r) => `    why: ${r}`),
        ...(a.decidedBy === null
          ? []
          : [
              `    ${a.status} by ${a.decidedBy} at ${a.decidedAt}${a.decisionReason ? `: ${a.decisionReason}` : ''}`,
            ]),
      ].join('\n'),
    )
    .join('\n');
}

const limitKeys = Object.keys(limitsSchema.shape) as Array<keyof Limits>;

/** `--raise steps=80 --raise costUsd=2`: new values for limits (each must be higher to matter). */
function collectRaise(value: string, previous: Partial<Limits>): Partial<Limits> {
  const match = /^(\w+)=(\d+(?:\.\d+)?)$/.exec(value);
  if (match === null) throw new InvalidArgumentError(`'${value}' is not LIMIT=NUMBER (e.g. steps=80)`);
  const key = match[1] as keyof Limits;
  if (!limitKeys.includes(key))
    throw new InvalidArgumentError(`'${match[1]}' is not a limit; limits: ${limitKeys.join(', ')}`);
  return { ...previous, [key]: Number(match[2]) };
}

function printKill(ctx: CliContext, result: KillResult): void {
  const ms = `${result.ms.toFixed(0)} ms`;
  switch (result.result) {
    case 'acknowledged':
      ctx.out(`${result.taskId}: killed (its process ${result.pid} stopped it, ${ms})`);
      break;
    case 'forced':
      ctx.out(
        `${result.taskId}: killed (process ${result.pid} did not answer; killed it and ${result.killedPids.filter((pid) => pid !== result.pid).length} process(es) below it, ${ms})`,
      );
      break;
    case 'not_running':
      ctx.out(`${result.taskId}: killed (it was ${result.status}, no process ran it)`);
      break;
    case 'already_ended':
      ctx.out(`${result.taskId}: already ended (${result.status})`);
      break;
  }
}

/** approvals, approve, deny, continue, abort, resume, kill, resume-all, keygen. */
export function registerControlCommands(program: Command, ctx: CliContext): void {
  const resume = async (configFile: string | undefined, taskId: string, reason: string, quiet: boolean) =>
    ctx.withStore(configFile, async (loaded, store) => {
      const { resumeTask } = await import('../engine/runTask.js');
      const { run } = await resumeTask({ loaded, store, taskId, reason, ...ctx.runOptions(quiet) });
      ctx.finishRun(run, false);
    });

  program
    .command('approvals')
    .description('what waits for a human: approvals of irreversible calls and escalations, oldest first')
    .addOption(ctx.configOption())
    .option('--all', 'decided ones too', false)
    .option('--task <id>', 'only this task')
    .option('--json', 'JSON', false)
    .action(async (opts: { config?: string; all: boolean; task?: string; json: boolean }) => {
      await ctx.withStore(opts.config, async (_loaded, store) => {
        const approvals = await store.listApprovals({
          ...(opts.all ? {} : { status: 'pending' as const }),
          ...(opts.task === undefined ? {} : { taskId: opts.task }),
        });
        ctx.out(opts.json ? JSON.stringify(approvals, null, 2) : formatApprovals(approvals));
      });
    });

  program
    .command('approve')
    .description(
      'approve a waiting irreversible call; the task resumes and runs it (exactly that call, once)',
    )
    .argument('<id>', 'approval id (ap-…) from keel approvals')
    .addOption(ctx.configOption())
    .option(
      '--as <name>',
      'who approves (recorded in the audit log; default: $KEEL_APPROVER or the login name)',
    )
    .option('--reason <text>', 'why (recorded)')
    .option('--no-resume', 'only record the approval; resume later with keel resume TASK')
    .option('-q, --quiet', 'no progress lines', false)
    .action(
      async (
        id: string,
        opts: { config?: string; as?: string; reason?: string; resume: boolean; quiet: boolean },
      ) => {
        const approval = await ctx.withStore(opts.config, async (_loaded, store) => {
          const by = ctx.approver(opts.as);
          const result = await approveCall(store, id, by, opts.reason ?? null, ctx.io.clock);
          ctx.out(`approved ${id} (${result.summary}) as ${by}`);
          return result;
        });
        if (opts.resume) await resume(opts.config, approval.taskId, `approval ${id} granted`, opts.quiet);
      },
    );

  program
    .command('deny')
    .description('refuse a waiting irreversible call; the task ends with the reason')
    .argument('<id>', 'approval id (ap-…)')
    .addOption(ctx.configOption())
    .requiredOption('--reason <text>', 'why (recorded, and the task ends with it)')
    .option('--as <name>', 'who denies (default: $KEEL_APPROVER or the login name)')
    .action(async (id: string, opts: { config?: string; reason: string; as?: string }) => {
      await ctx.withStore(opts.config, async (_loaded, store) => {
        const by = ctx.approver(opts.as);
        const approval = await denyCall(store, id, by, opts.reason, ctx.io.clock);
        ctx.out(`denied ${id} as ${by}; task ${approval.taskId} ended`);
      });
    });

  program
    .command('continue')
    .description('continue an escalated task, with raised limits or a hint for the agent; it resumes now')
    .argument('<id>', 'escalation id (es-…) from keel approvals')
    .addOption(ctx.configOption())
    .option(
      '--raise <limit=value>',
      'a new, higher limit (repeatable), e.g. steps=80 costUsd=2',
      collectRaise,
      {},
    )
    .option('--hint <text>', 'a message the agent receives from a human before its next step')
    .option('--as <name>', 'who decides (default: $KEEL_APPROVER or the login name)')
    .option('--no-resume', 'only record the decision')
    .option('-q, --quiet', 'no progress lines', false)
    .action(
      async (
        id: string,
        opts: {
          config?: string;
          raise: Partial<Limits>;
          hint?: string;
          as?: string;
          resume: boolean;
          quiet: boolean;
        },
      ) => {
        const approval = await ctx.withStore(opts.config, async (_loaded, store) => {
          const by = ctx.approver(opts.as);
          const result = await continueEscalation(store, id, by, opts.raise, opts.hint, ctx.io.clock);
          ctx.out(`continuing ${result.taskId} (${id}) as ${by}`);
          return result;
        });
        if (opts.resume) await resume(opts.config, approval.taskId, `escalation ${id} continued`, opts.quiet);
      },
    );

  program
    .command('abort')
    .description('end an escalated task')
    .argument('<id>', 'escalation id (es-…)')
    .addOption(ctx.configOption())
    .requiredOption('--reason <text>', 'why (recorded)')
    .option('--as <name>', 'who decides')
    .action(async (id: string, opts: { config?: string; reason: string; as?: string }) => {
      await ctx.withStore(opts.config, async (_loaded, store) => {
        const by = ctx.approver(opts.as);
        const approval = await abortEscalation(store, id, by, opts.reason, ctx.io.clock);
        ctx.out(`aborted ${approval.taskId} (${id}) as ${by}`);
      });
    });

  program
    .command('resume')
    .description(
      'resume a task that stopped before its end (its process crashed or was killed, or it waited): from its last completed step, repeating no tool effect and asking no recorded model call again',
    )
    .argument('<task>', 'task id')
    .addOption(ctx.configOption())
    .option('-q, --quiet', 'no progress lines', false)
    .action(async (taskId: string, opts: { config?: string; quiet: boolean }) => {
      await resume(opts.config, taskId, 'keel resume', opts.quiet);
    });

  program
    .command('kill')
    .description('stop a task (or every task with --all) within a second, in-flight tool calls included')
    .argument('[task]', 'task id')
    .addOption(ctx.configOption())
    .option('--all', 'every task not yet ended, and refuse new ones until keel resume-all', false)
    .option('--as <name>', 'who kills (recorded)')
    .action(async (taskId: string | undefined, opts: { config?: string; all: boolean; as?: string }) => {
      if ((taskId === undefined) === !opts.all)
        throw new KeelError('INVALID_ARGUMENT', 'name one task, or pass --all', {
          hint: 'keel kill TASK | keel kill --all',
        });
      await ctx.withStore(opts.config, async (_loaded, store) => {
        const by = ctx.approver(opts.as);
        if (opts.all) {
          const results = await killAll(store, by, { clock: ctx.io.clock });
          for (const result of results) printKill(ctx, result);
          ctx.out(
            `global stop in force: no task starts until keel resume-all (${results.length} task(s) stopped)`,
          );
        } else {
          if ((await store.getTask(taskId!)) === undefined)
            throw new KeelError('NOT_FOUND', `no task '${taskId}'`, { hint: 'keel runs lists the tasks' });
          printKill(ctx, await killTask(store, taskId!, by, { clock: ctx.io.clock }));
        }
      });
    });

  program
    .command('resume-all')
    .description('lift the global stop set by keel kill --all')
    .addOption(ctx.configOption())
    .action(async (opts: { config?: string }) => {
      await ctx.withStore(opts.config, async (_loaded, store) => {
        const stop = await liftGlobalStop(store);
        ctx.out(
          stop === null
            ? 'no global stop was in force'
            : `global stop lifted (set by ${stop.by} at ${stop.at})`,
        );
      });
    });

  program
    .command('keygen')
    .description(
      'write an Ed25519 key pair for deploy approvals: the private key for approvals.signingKey, the public one for keel-deploy --approval-key',
    )
    .option('--dir <dir>', 'where to write approval.key and approval.pub', '.')
    .option('--force', 'overwrite', false)
    .action((opts: { dir: string; force: boolean }) => {
      const dir = path.resolve(ctx.io.cwd, opts.dir);
      mkdirSync(dir, { recursive: true });
      const { privateKeyPem, publicKeyPem } = generateApprovalKeyPair();
      const key = path.join(dir, 'approval.key');
      if (existsSync(key) && !opts.force)
        throw new KeelError('ALREADY_EXISTS', `${key} exists`, {
          hint: 'pass --force to replace it (tokens it signed stop verifying)',
        });
      writeFileSync(key, privateKeyPem, { mode: 0o600 });
      writeFileSync(path.join(dir, 'approval.pub'), publicKeyPem);
      ctx.out(
        `wrote ${key} (keep it private: approvals.signingKey) and ${path.join(dir, 'approval.pub')} (keel-deploy --approval-key)`,
      );
    });
}
