import { mkdirSync, writeFileSync, existsSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { KeelError } from '@keel/kit/core';
import type { TaskRunV1 } from '@keel/contracts';
import type { Limits } from '../config/schema.js';
import type { KillResult } from '../control/kill.js';
import { maskedPaths } from '../approvals/masked.js';
import type { LoadedConfig } from '../config/load.js';
import type { ApprovalRecord, TaskStore } from '../store/taskStore.js';
import type { CliContext } from './cliContext.js';
import { formatCommands, type Invocation } from './invocation.js';

/** `keel kill --ack-ms`: a whole number of milliseconds, at most a minute. */
const ackMsOption = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 60_000)
    throw new InvalidArgumentError('--ack-ms must be a whole number of milliseconds from 1 to 60000');
  return n;
};

/** What a waiting or escalated run's reader should type next, runnable where it is printed. */
export function howToAnswer(run: TaskRunV1, keel: Invocation, config: string): string {
  const id = /(ap-[0-9a-f]{10}|es-[0-9a-f]{10})/.exec(run.outcome.message)?.[1];
  const lines = (rows: Array<[string, string]>) =>
    formatCommands(rows.map(([args, why]) => [keel.command(args, { config }), why]));
  if (id === undefined) return lines([['approvals', 'what waits for a human']]);
  return `a human decides:\n${lines(
    id.startsWith('ap-')
      ? [
          [`approve ${id} --as NAME`, 'approve it; the task resumes and finishes'],
          [`deny ${id} --reason TEXT`, 'refuse it; the task ends with the reason'],
        ]
      : [
          [
            `continue ${id} --hint TEXT`,
            'go on, the agent told TEXT first (--raise LIMIT=NUMBER, e.g. --raise steps=80, raises a limit)',
          ],
          [`abort ${id} --reason TEXT`, 'end the task'],
        ],
  )}`;
}

/**
 * One request in full, for the person deciding: everything `keel approvals` lists, then the whole
 * arguments the approval binds (a long write_file's content included), with the secrets masked
 * named, since the hash covers their real values.
 */
export function formatApproval(a: ApprovalRecord): string {
  const masked = maskedPaths(a.arguments);
  return [
    formatApprovals([a]),
    ...(a.kind === 'tool' ? [`    sha256 of the arguments: ${a.argsSha256 ?? '(none)'}`] : []),
    '',
    a.kind === 'tool' ? 'What would run, exactly (these arguments):' : 'Where it stopped:',
    JSON.stringify(a.arguments, null, 2),
    ...(masked.length === 0
      ? []
      : [
          '',
          `Masked here (secrets): ${masked.join(', ')} — the approval binds their real values, which are not shown.`,
        ]),
  ].join('\n');
}

/** Each request: its id, kind and status, then always the tool it asks for and why. */
export function formatApprovals(approvals: ApprovalRecord[]): string {
  if (approvals.length === 0) return 'nothing waits for a human';
  return approvals
    .map((a) =>
      [
        `${a.id}  ${a.kind === 'tool' ? 'approval' : 'escalation'}  ${a.status}  task ${a.taskId}  step ${a.step}  asked ${a.requestedAt}  expires ${a.expiresAt}`,
        `    tool: ${a.tool === null ? '(none: the task itself waits)' : `${a.server === null ? '' : `${a.server}.`}${a.tool}`}`,
        `    what: ${a.summary}`,
        ...(a.reasons.length === 0
          ? ['    why:  (no reason was recorded)']
          : a.reasons.map((r) => `    why:  ${r}`)),
        ...(a.decidedBy === null
          ? []
          : [
              `    ${a.status} by ${a.decidedBy} at ${a.decidedAt}${a.decisionReason ? `: ${a.decisionReason}` : ''}`,
            ]),
      ].join('\n'),
    )
    .join('\n');
}

/**
 * `--raise steps=80 --raise costUsd=2`: new values for limits (each must be higher to matter). The
 * names are checked against the limits when the command runs ({@link checkRaise}): the schema that
 * knows them is loaded only by the verbs that use it.
 */
function collectRaise(value: string, previous: Record<string, number>): Record<string, number> {
  const match = /^(\w+)=(\d+(?:\.\d+)?)$/.exec(value);
  if (match === null) throw new InvalidArgumentError(`'${value}' is not LIMIT=NUMBER (e.g. steps=80)`);
  return { ...previous, [match[1]!]: Number(match[2]) };
}

async function checkRaise(raise: Record<string, number>): Promise<Partial<Limits>> {
  const { limitsSchema } = await import('../config/schema.js');
  const limitKeys = Object.keys(limitsSchema.shape);
  for (const key of Object.keys(raise))
    if (!limitKeys.includes(key))
      throw new KeelError('INVALID_ARGUMENT', `--raise: '${key}' is not a limit`, {
        hint: `limits: ${limitKeys.join(', ')}`,
      });
  return raise as Partial<Limits>;
}

function printKill(ctx: CliContext, result: KillResult): void {
  const ms = `${result.ms.toFixed(0)} ms`;
  switch (result.result) {
    case 'acknowledged':
      ctx.out(`${result.taskId}: killed (its process ${result.pid} stopped it, ${ms})`);
      break;
    case 'forced':
      ctx.out(
        `${result.taskId}: killed (process ${result.pid} did not answer; killed the task's ${result.killedPids.length} process(es), not the process itself, ${ms})`,
      );
      break;
    case 'requested':
      ctx.out(
        `${result.taskId}: kill requested, not confirmed: process ${result.pid} stops at its next call (its writes are refused from now on); this system has no /proc, so keel cannot signal or force it — keel kill works fully on Linux only`,
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
  // With --json, stdout holds only the record: the decision line goes to stderr.
  const say = (json: boolean, line: string) => (json ? ctx.io.stderr.write(`${line}\n`) : ctx.out(line));
  /** `keel approve` and `keel continue` under a changed config: refused unless accepted (control/decisions.ts). */
  const refuseChangedConfig = async (
    loaded: LoadedConfig,
    store: TaskStore,
    id: string,
    command: string,
    opts: { resume: boolean; acceptChangedConfig: boolean },
  ) => {
    if (!opts.resume || opts.acceptChangedConfig) return;
    const { refuseUnderChangedConfig } = await import('../control/decisions.js');
    await refuseUnderChangedConfig(loaded, store, id, {
      acceptCommand: ctx.invocation().command(`${command} --accept-changed-config`, { config: loaded.file }),
      nameFile: true,
    });
  };
  const resume = async (
    configFile: string | undefined,
    taskId: string,
    reason: string,
    opts: { quiet: boolean; json?: boolean; acceptChangedConfig?: boolean; acceptDivergence?: boolean },
  ) =>
    ctx.withStore(configFile, async (loaded, store) => {
      const { resumeTask } = await import('../engine/runTask.js');
      const { run } = await resumeTask({
        loaded,
        store,
        taskId,
        reason,
        ...(opts.acceptChangedConfig === true ? { acceptChangedConfig: true } : {}),
        ...(opts.acceptDivergence === true ? { acceptDivergence: true } : {}),
        ...ctx.runOptions(opts.quiet),
      });
      await ctx.finishRun(run, opts.json === true, loaded.file, store);
    });

  program
    .command('approvals')
    .description(
      'what waits for a human: approvals of irreversible calls and escalations, oldest first; `keel approvals show ID` shows one in full (paged on a terminal)',
    )
    .argument('[show]', '`show`: one request in full')
    .argument('[id]', 'the request to show (ap-… or es-…)')
    .addOption(ctx.configOption())
    .option('--all', 'decided ones too', false)
    .option('--task <id>', 'only this task')
    .option('--json', 'JSON', false)
    .action(
      async (
        show: string | undefined,
        id: string | undefined,
        opts: { config?: string; all: boolean; task?: string; json: boolean },
      ) => {
        if (show !== undefined && (show !== 'show' || id === undefined))
          throw new KeelError(
            'INVALID_ARGUMENT',
            `keel approvals ${show}${id === undefined ? '' : ` ${id}`}: not a command`,
            {
              hint: '`keel approvals` lists what waits; `keel approvals show ID` shows one in full',
            },
          );
        await ctx.withStore(opts.config, async (_loaded, store) => {
          if (id !== undefined) {
            const approval = await store.getApproval(id);
            if (approval === undefined)
              throw new KeelError('NOT_FOUND', `no approval or escalation '${id}'`, {
                hint: '`keel approvals --all` lists them',
              });
            await ctx.page(opts.json ? JSON.stringify(approval, null, 2) : formatApproval(approval));
            return;
          }
          const approvals = await store.listApprovals({
            ...(opts.all ? {} : { status: 'pending' as const }),
            ...(opts.task === undefined ? {} : { taskId: opts.task }),
          });
          ctx.out(opts.json ? JSON.stringify(approvals, null, 2) : formatApprovals(approvals));
        });
      },
    );

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
    .option(
      '--accept-changed-config',
      'resume although the config or a prompt file changed since the task ran (recorded in its event log); without it such an approval is refused before it is recorded, naming what changed',
      false,
    )
    .option(
      '--accept-divergence',
      'on resume, a recorded step whose request differs now (an edited prompt, config or workspace) is asked afresh instead of stopping the task (recorded as an event)',
      false,
    )
    .option(
      '--json',
      "print the resumed task's taskRun.v1 record as JSON (the decision goes to stderr)",
      false,
    )
    .option('-q, --quiet', 'no progress lines', false)
    .action(
      async (
        id: string,
        opts: {
          config?: string;
          as?: string;
          reason?: string;
          resume: boolean;
          acceptChangedConfig: boolean;
          acceptDivergence: boolean;
          quiet: boolean;
          json: boolean;
        },
      ) => {
        const approval = await ctx.withStore(opts.config, async (loaded, store) => {
          const by = ctx.approver(opts.as);
          await refuseChangedConfig(loaded, store, id, `approve ${id} --as ${by}`, opts);
          const { approveCall, osUser } = await import('../control/decisions.js');
          const os = osUser();
          const result = await approveCall(store, id, by, opts.reason ?? null, ctx.io.clock, os);
          say(opts.json, `approved ${id} (${result.summary}) as ${by} (os user ${os})`);
          return result;
        });
        if (opts.resume) await resume(opts.config, approval.taskId, `approval ${id} granted`, opts);
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
        const { denyCall } = await import('../control/decisions.js');
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
    .option(
      '--accept-changed-config',
      'resume although the config or a prompt file changed since the task ran (recorded in its event log); without it such a decision is refused before it is recorded, naming what changed',
      false,
    )
    .option(
      '--accept-divergence',
      'on resume, a recorded step whose request differs now (an edited prompt, config or workspace) is asked afresh instead of stopping the task (recorded as an event)',
      false,
    )
    .option(
      '--json',
      "print the resumed task's taskRun.v1 record as JSON (the decision goes to stderr)",
      false,
    )
    .option('-q, --quiet', 'no progress lines', false)
    .action(
      async (
        id: string,
        opts: {
          config?: string;
          raise: Record<string, number>;
          hint?: string;
          as?: string;
          resume: boolean;
          acceptChangedConfig: boolean;
          acceptDivergence: boolean;
          quiet: boolean;
          json: boolean;
        },
      ) => {
        const approval = await ctx.withStore(opts.config, async (loaded, store) => {
          const by = ctx.approver(opts.as);
          const raise = await checkRaise(opts.raise);
          await refuseChangedConfig(loaded, store, id, `continue ${id} --as ${by}`, opts);
          const { continueEscalation } = await import('../control/decisions.js');
          const result = await continueEscalation(store, id, by, raise, opts.hint, ctx.io.clock);
          say(opts.json, `continuing ${result.taskId} (${id}) as ${by}`);
          return result;
        });
        if (opts.resume) await resume(opts.config, approval.taskId, `escalation ${id} continued`, opts);
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
        const { abortEscalation } = await import('../control/decisions.js');
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
    .option('--json', 'print the taskRun.v1 record as JSON', false)
    .option('-q, --quiet', 'no progress lines', false)
    .option(
      '--accept-changed-config',
      'go on although the config or a prompt file changed since the task ran (recorded in its event log)',
      false,
    )
    .option(
      '--accept-divergence',
      'a recorded step whose request differs now (an edited prompt, config or workspace) is asked afresh instead of stopping the task (recorded as an event)',
      false,
    )
    .addHelpText(
      'after',
      '\nExit code: 0 when the task succeeded, 1 when it ended otherwise, 2 on bad usage, 3 when it waits for a human.\n',
    )
    .action(
      async (
        taskId: string,
        opts: {
          config?: string;
          quiet: boolean;
          json: boolean;
          acceptChangedConfig: boolean;
          acceptDivergence: boolean;
        },
      ) => {
        await resume(opts.config, taskId, 'keel resume', opts);
      },
    );

  program
    .command('kill')
    .description('stop a task (or every task with --all) within a second, in-flight tool calls included')
    .argument('[task]', 'task id')
    .addOption(ctx.configOption())
    .option('--all', 'every task not yet ended, and refuse new ones until keel resume-all', false)
    .option('--as <name>', 'who kills (recorded)')
    .option(
      '--ack-ms <ms>',
      "how long the task's process has to acknowledge before its servers are SIGKILLed (1-60000)",
      ackMsOption,
      500,
    )
    .action(
      async (
        taskId: string | undefined,
        opts: { config?: string; all: boolean; as?: string; ackMs: number },
      ) => {
        if ((taskId === undefined) === !opts.all)
          throw new KeelError('INVALID_ARGUMENT', 'name one task, or pass --all', {
            hint: '`keel kill TASK` stops one task, `keel kill --all` every one',
          });
        await ctx.withStore(opts.config, async (loaded, store) => {
          const by = ctx.approver(opts.as);
          if (opts.all) {
            const { killAll } = await import('../control/kill.js');
            const results = await killAll(store, by, { clock: ctx.io.clock, ackMs: opts.ackMs });
            for (const result of results) printKill(ctx, result);
            ctx.out(
              `global stop in force: no task starts until \`${ctx.invocation().command('resume-all', { config: loaded.file })}\` (${results.length} task(s) stopped)`,
            );
          } else {
            if ((await store.getTask(taskId!)) === undefined)
              throw new KeelError('NOT_FOUND', `no task '${taskId}'`, {
                hint: '`keel runs` lists the tasks',
              });
            const { killTask } = await import('../control/kill.js');
            printKill(ctx, await killTask(store, taskId!, by, { clock: ctx.io.clock, ackMs: opts.ackMs }));
          }
        });
      },
    );

  program
    .command('resume-all')
    .description('lift the global stop set by keel kill --all')
    .addOption(ctx.configOption())
    .action(async (opts: { config?: string }) => {
      await ctx.withStore(opts.config, async (loaded, store) => {
        const [{ liftGlobalStop }, { storeLocation }] = await Promise.all([
          import('../control/decisions.js'),
          import('../store/openStore.js'),
        ]);
        const stop = await liftGlobalStop(store);
        ctx.out(
          stop === null
            ? 'no global stop was in force'
            : `global stop lifted (set by ${stop.by} at ${stop.at})`,
        );
        const location = storeLocation(loaded, ctx.io.env);
        if (stop === null || location.kind !== 'postgres') return;
        // Workers took the jobs of tasks submitted during the stop and left them queued.
        const { openQueue, requeueQueued } = await import('../workers/worker.js');
        const boss = await openQueue(location.url);
        try {
          ctx.out(`${await requeueQueued(store, boss, stop.at)} queued task(s) queued to run again`);
        } finally {
          await boss.stop({ graceful: false });
        }
      });
    });

  program
    .command('keygen')
    .description(
      'write an Ed25519 key pair for deploy approvals: the private key for approvals.signingKey, the public one for keel-deploy --approval-key',
    )
    .option('--dir <dir>', 'where to write approval.key and approval.pub', '.')
    .option('--force', 'overwrite', false)
    .action(async (opts: { dir: string; force: boolean }) => {
      const dir = path.resolve(ctx.io.cwd, opts.dir);
      mkdirSync(dir, { recursive: true });
      const { generateApprovalKeyPair } = await import('@keel/kit/approval');
      const { privateKeyPem, publicKeyPem } = generateApprovalKeyPair();
      const key = path.join(dir, 'approval.key');
      if (existsSync(key) && !opts.force)
        throw new KeelError('ALREADY_EXISTS', `${key} exists`, {
          hint: 'pass --force to replace it (tokens it signed stop verifying)',
        });
      writeFileSync(key, privateKeyPem, { mode: 0o600 });
      // --force over a key an older version left readable: the mode above applies only to a new file.
      chmodSync(key, 0o600);
      writeFileSync(path.join(dir, 'approval.pub'), publicKeyPem);
      ctx.out(
        `wrote ${key} (keep it private: approvals.signingKey) and ${path.join(dir, 'approval.pub')} (keel-deploy --approval-key)`,
      );
    });
}
