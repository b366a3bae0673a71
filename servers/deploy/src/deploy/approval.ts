import { createHash } from 'node:crypto';
import { fail, ok, type Outcome, type StateOp, type ToolContext } from '@keel/kit';
import { APPROVAL_META_KEY, verifyApproval, type ApprovalPayload } from '@keel/kit/approval';
import * as z from 'zod';
import type { DeployContext } from './context.js';
import { keys, type PlanRecord } from './records.js';

/** How long a person has to answer the approval question at the client. */
const approvalQuestionTtlMs = 10 * 60_000;

/**
 * The approval an apply of `plan` needs: a signed token from `_meta`, else the answer of the person
 * at the client when it can ask, else APPROVAL_REQUIRED with the command that approves out of band.
 * Only checks; spending it is the caller's.
 */
export function checkApproval(
  deps: DeployContext,
  plan: PlanRecord,
  ctx: ToolContext,
): Outcome<ApprovalPayload> {
  const token = ctx.meta?.[APPROVAL_META_KEY];
  const command = approveCommand(deps, plan);
  if (token === undefined) {
    const asked = askApproval(deps, plan, ctx);
    if (asked !== undefined) return asked;
    return fail(
      'APPROVAL_REQUIRED',
      `deploying to '${plan.environment}' needs a person's approval of plan '${plan.planId}'`,
      {
        hint: `This client cannot ask its user (no elicitation). Ask a person holding an approval signing key to run: ${command} — then call apply_deploy again with the printed token in _meta["${APPROVAL_META_KEY}"].${deps.approvalKeys.length === 0 ? ' This server was started without --approval-key, so it cannot accept any token yet.' : ''}`,
        details: {
          planId: plan.planId,
          planHash: plan.planHash,
          environment: plan.environment,
          approveCommand: command,
        },
      },
    );
  }
  const verified = verifyApproval(token, deps.approvalKeys, {
    tool: 'apply_deploy',
    environment: plan.environment,
    planHash: plan.planHash,
    now: deps.now(),
  });
  if (verified.ok) return ok(verified.payload);
  const messages: Record<typeof verified.reason, string> = {
    malformed: 'the approval token is not a keel-approval token',
    forged: 'the approval token is not signed by a key this server trusts',
    expired: 'the approval token has expired',
    other_tool: `the approval token approves ${verified.payload?.tool ?? 'another tool'}, not apply_deploy`,
    other_environment: `the approval token is for environment '${verified.payload?.environment ?? '?'}', not '${plan.environment}'`,
    other_plan: `the approval token is for another plan (plan hash ${verified.payload?.planHash.slice(0, 12) ?? '?'}…), not '${plan.planId}'`,
    reused: 'the approval token was already used',
  };
  return fail('APPROVAL_REJECTED', messages[verified.reason], {
    hint: `Get a new approval for this plan: ${command}`,
    details: { reason: verified.reason, planId: plan.planId, environment: plan.environment },
  });
}

/**
 * Asks the person at the client to approve the plan (its summary and hash) when the client can show
 * a form. Undefined when it cannot: the caller then needs a token. The sealed question is bound to
 * the environment and plan hash, so an answer can approve nothing else, and its id is spent like a
 * token's nonce.
 */
function askApproval(
  deps: DeployContext,
  plan: PlanRecord,
  ctx: ToolContext,
): Outcome<ApprovalPayload> | undefined {
  const command = approveCommand(deps, plan);
  const outOfBand = `Approve out of band instead: ${command} — then call apply_deploy again with the printed token in _meta["${APPROVAL_META_KEY}"], or call apply_deploy again to be asked anew.`;
  const summary = plan.summary;
  const asked = ctx.ask({
    id: 'approve_deploy',
    message: [
      `Deploy plan ${plan.planId} to '${plan.environment}'?`,
      `Release ${plan.releaseId} replaces ${plan.baseRelease ?? 'nothing (first release)'}.`,
      summary === undefined
        ? undefined
        : `Files: ${summary.added} added, ${summary.changed} changed, ${summary.removed} removed, ${summary.unchanged} unchanged (${summary.bytes} bytes to write).`,
      ...(plan.warnings ?? []).map((warning) => `Warning: ${warning}`),
      `Plan hash: ${plan.planHash}`,
    ]
      .filter((line) => line !== undefined)
      .join('\n'),
    schema: z.object({
      approve: z.boolean().describe(`Deploy ${plan.planId} to ${plan.environment} now.`),
      approver: z.string().min(1).max(100).describe('Your name, recorded in the audit log as the approver.'),
    }),
    about: `${plan.environment}\0${plan.planHash}`,
    ttlMs: approvalQuestionTtlMs,
  });
  const details = { planId: plan.planId, planHash: plan.planHash, environment: plan.environment };
  switch (asked.status) {
    case 'unsupported':
      return undefined;
    case 'pending':
      return asked.outcome;
    case 'refused':
      return fail(
        'APPROVAL_REJECTED',
        asked.reason === 'expired'
          ? `the approval question for plan '${plan.planId}' expired before it was answered`
          : `the approval answer for plan '${plan.planId}' cannot be trusted: ${asked.error.message}`,
        { hint: outOfBand, details: { ...details, reason: asked.reason } },
      );
    case 'answered':
      if (asked.action === 'cancel')
        return fail(
          'APPROVAL_REQUIRED',
          `the person at the client cancelled the approval of '${plan.planId}'`,
          {
            hint: outOfBand,
            details: { ...details, reason: 'cancelled' },
          },
        );
      if (asked.action === 'decline' || (asked.action === 'accept' && !asked.content.approve))
        return fail('APPROVAL_REJECTED', `the person at the client declined to deploy '${plan.planId}'`, {
          hint: 'Nothing was deployed. Change what they objected to, plan again and apply the new plan.',
          details: { ...details, reason: 'declined' },
        });
      if (asked.action !== 'accept') return undefined;
      return ok({
        tool: 'apply_deploy',
        environment: plan.environment,
        planId: plan.planId,
        planHash: plan.planHash,
        approver: `${asked.content.approver} (asked at the client)`,
        issuedAt: deps.now(),
        expiresAt: deps.now() + approvalQuestionTtlMs,
        // The question's own id, spent once like a token's nonce.
        nonce: createHash('sha256').update(asked.stateId).digest('hex').slice(0, 32),
      });
  }
}

/** Refuses an approval whose nonce an earlier deploy spent (read only: spending is {@link spendNonceOp}'s). */
export async function checkUnspent(
  deps: DeployContext,
  approval: ApprovalPayload,
  plan: PlanRecord,
): Promise<Outcome<void>> {
  const spent = await deps.store.get(keys.nonce(approval.nonce));
  return spent === undefined ? ok(undefined) : reused(deps, plan);
}

/**
 * The write that spends an approval's nonce, committed with the attempt it allows so that a crash
 * never leaves a spent approval without the deploy that spent it: a retry finds the attempt and
 * finishes or drops it (dropping gives the nonce back). `ifVersion: 0` keeps it single-use.
 */
export function spendNonceOp(deps: DeployContext, approval: ApprovalPayload, plan: PlanRecord): StateOp {
  return {
    kind: 'put',
    key: keys.nonce(approval.nonce),
    value: {
      planId: plan.planId,
      environment: plan.environment,
      approver: approval.approver,
      at: deps.now(),
    },
    ifVersion: 0,
    ttlMs: Math.max(1, approval.expiresAt - deps.now()) + 60_000,
  };
}

export function reused(deps: DeployContext, plan: PlanRecord) {
  return fail('APPROVAL_REJECTED', 'the approval token was already used', {
    hint: `An approval is single-use. Get a new one: ${approveCommand(deps, plan)}`,
    details: { reason: 'reused', planId: plan.planId, environment: plan.environment },
  });
}

/** What a person runs to approve `plan` out of band. */
export function approveCommand(deps: DeployContext, plan: PlanRecord): string {
  return `${deps.bin} approve ${plan.planId} --environment ${plan.environment} --plan-hash ${plan.planHash} --approver NAME --signing-key FILE`;
}
