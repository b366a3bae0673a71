import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { lstat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { APPROVAL_META_KEY, newNonce, signApproval, type ApprovalPayload } from '../src/index.js';
import { createProject, startInProcess, type InProcess } from './helpers.js';

const approver = generateKeyPairSync('ed25519');
const stranger = generateKeyPairSync('ed25519');

async function productionPlan(): Promise<{
  deploy: InProcess;
  plan: Record<string, any>;
  token: (overrides?: Partial<ApprovalPayload>, key?: KeyObject) => string;
}> {
  const project = await createProject({ staging: {}, production: { policy: { requiresApproval: true } } });
  const deploy = await startInProcess(project, [approver.publicKey]);
  const plan = await deploy.call('plan_deploy', { environment: 'production' });
  const token = (overrides: Partial<ApprovalPayload> = {}, key: KeyObject = approver.privateKey) =>
    signApproval(
      {
        tool: 'apply_deploy',
        environment: 'production',
        planId: plan.planId,
        planHash: plan.planHash,
        approver: 'alice',
        issuedAt: deploy.clock.now,
        expiresAt: deploy.clock.now + 15 * 60_000,
        nonce: newNonce(),
        ...overrides,
      },
      key,
    );
  return { deploy, plan, token };
}

const meta = (token: string) => ({ [APPROVAL_META_KEY]: token });

describe('approval for environments that require it', () => {
  it('without a token: APPROVAL_REQUIRED with the plan and the command that approves it', async () => {
    const { deploy, plan } = await productionPlan();
    const command = `keel-deploy approve ${plan.planId} --environment production --plan-hash ${plan.planHash} --approver NAME --signing-key FILE`;
    expect([plan.requiresApproval, plan.approveCommand]).toEqual([true, command]);
    const error = await deploy.error('apply_deploy', { planId: plan.planId });
    expect(error).toEqual({
      code: 'APPROVAL_REQUIRED',
      message: `deploying to 'production' needs a person's approval of plan '${plan.planId}'`,
      hint: `This client cannot ask its user (no elicitation). Ask a person holding an approval signing key to run: ${command} — then call apply_deploy again with the printed token in _meta["keel/approval"].`,
      retryable: false,
      details: {
        planId: plan.planId,
        planHash: plan.planHash,
        environment: 'production',
        approveCommand: command,
      },
    });
    // A token in the arguments is not a token: the schema does not know the field, and nothing is deployed.
    const asArgument = await deploy.server.callTool('apply_deploy', { planId: plan.planId, approval: 'x' });
    expect(asArgument.isError).toBe(true);
  });

  it('an answer that comes after the question expired is refused with the way to approve out of band', async () => {
    const { deploy, plan } = await productionPlan();
    const asking = { canElicit: true, inputResponses: undefined, requestState: undefined };
    const question = (await deploy.server.runCall('apply_deploy', { planId: plan.planId }, { asking })) as {
      requestState: string;
    };
    expect(typeof question.requestState).toBe('string');
    deploy.clock.now += 10 * 60_000 + 1;
    const late = await deploy.server.runCall(
      'apply_deploy',
      { planId: plan.planId },
      {
        asking: {
          canElicit: true,
          inputResponses: {
            approve_deploy: { action: 'accept', content: { approve: true, approver: 'Ada' } },
          },
          requestState: question.requestState,
        },
      },
    );
    const command = `keel-deploy approve ${plan.planId} --environment production --plan-hash ${plan.planHash} --approver NAME --signing-key FILE`;
    expect((late as { _meta?: Record<string, unknown> })._meta?.['keel/error']).toEqual({
      code: 'APPROVAL_REJECTED',
      message: `the approval question for plan '${plan.planId}' expired before it was answered`,
      hint: `Approve out of band instead: ${command} — then call apply_deploy again with the printed token in _meta["keel/approval"], or call apply_deploy again to be asked anew.`,
      retryable: false,
      details: { planId: plan.planId, planHash: plan.planHash, environment: 'production', reason: 'expired' },
    });
    const environments = (await deploy.call('list_environments', {})).environments as Array<{
      name: string;
      current: string | null;
    }>;
    expect(environments.find((env) => env.name === 'production')?.current).toBeNull();
  });

  it('a valid token deploys once, names the approver in the result and the audit log, and cannot be used again', async () => {
    const { deploy, plan, token } = await productionPlan();
    const approval = token();
    const applied = await deploy.call('apply_deploy', { planId: plan.planId }, meta(approval));
    expect([applied.status, applied.approvedBy, applied.replayed]).toEqual(['live', 'alice', false]);
    const reused = await deploy.error('apply_deploy', { planId: plan.planId }, meta(approval));
    expect([reused.code, reused.message, reused.details?.['reason']]).toEqual([
      'APPROVAL_REJECTED',
      'the approval token was already used',
      'reused',
    ]);
    // A fresh approval of the same plan gets the existing release back.
    const again = await deploy.call('apply_deploy', { planId: plan.planId }, meta(token()));
    expect([again.replayed, again.releaseId]).toEqual([true, plan.releaseId]);
    expect(
      (await deploy.audit.list()).map((row) => [row.tool, row.outcome, row.errorCode, row.actor]),
    ).toEqual([
      ['apply_deploy', 'ok', null, 'alice'],
      ['apply_deploy', 'error', 'APPROVAL_REJECTED', 'alice'],
      ['apply_deploy', 'ok', null, 'alice'],
    ]);
  });

  it('refuses forged, expired, other-plan, other-environment, other-tool and malformed tokens, each saying which', async () => {
    const { deploy, plan, token } = await productionPlan();
    const staging = await deploy.call('plan_deploy', { environment: 'staging' });
    const reasons: string[] = [];
    const tokens = [
      token({}, stranger.privateKey),
      token({ expiresAt: deploy.clock.now }),
      token({ planHash: staging.planHash }),
      token({ environment: 'staging' }),
      token({ tool: 'rollback' }),
      'keel-approval.v1.e30.AAAA',
      `${token().slice(0, -4)}AAAA`,
    ];
    for (const candidate of tokens) {
      const error = await deploy.error('apply_deploy', { planId: plan.planId }, meta(candidate));
      expect(error.code).toBe('APPROVAL_REJECTED');
      reasons.push(error.details?.['reason'] as string);
    }
    expect(reasons).toEqual([
      'forged',
      'expired',
      'other_plan',
      'other_environment',
      'other_tool',
      'malformed',
      'forged',
    ]);
    expect((await deploy.call('list_releases', { environment: 'production' })).releases).toEqual([]);
  });

  it('a token that is valid now expires with the clock', async () => {
    const { deploy, plan, token } = await productionPlan();
    const approval = token();
    deploy.clock.now += 15 * 60_000;
    const error = await deploy.error('apply_deploy', { planId: plan.planId }, meta(approval));
    expect([error.code, error.message, error.details?.['reason']]).toEqual([
      'APPROVAL_REJECTED',
      'the approval token has expired',
      'expired',
    ]);
  });

  it('an approval refused for staleness is given back, not spent', async () => {
    const project = await createProject({ production: { policy: { requiresApproval: true } } });
    const deploy = await startInProcess(project, [approver.publicKey]);
    const plan = await deploy.call('plan_deploy', { environment: 'production' });
    const approval = signApproval(
      {
        tool: 'apply_deploy',
        environment: 'production',
        planId: plan.planId,
        planHash: plan.planHash,
        approver: 'bob',
        issuedAt: deploy.clock.now,
        expiresAt: deploy.clock.now + 60_000,
        nonce: newNonce(),
      },
      approver.privateKey,
    );
    await writeFile(path.join(project.build, 'app.js'), 'changed');
    expect((await deploy.error('apply_deploy', { planId: plan.planId }, meta(approval))).code).toBe(
      'STALE_PLAN',
    );
    await writeFile(path.join(project.build, 'app.js'), 'console.log(1);\n');
    const applied = await deploy.call('apply_deploy', { planId: plan.planId }, meta(approval));
    expect([applied.status, applied.approvedBy]).toEqual(['live', 'bob']);
    await expect(lstat(path.join(project.deployRoot, 'production', 'current'))).resolves.toBeDefined();
  });
});
