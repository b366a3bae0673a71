import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ToolError } from '@keel/kit';
import { connectStdio, type ClientKind, type ConnectOptions, type ElicitAnswer } from '@keel/testing';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { describe, expect, it, onTestFinished } from 'vitest';
import { binPath, createProject, type Project } from './helpers.js';

// The 2026-07-28 era (input_required, the client retries with the answer and the sealed state) and
// the 2025 era (the SDK's shim sends elicitation/create), with the v2 client and the v1 one IDEs ship.
const eras: Array<[string, ClientKind, ConnectOptions['era']]> = [
  ['v2 client, 2026-07-28', 'v2', 'modern'],
  ['v2 client, 2025 era', 'v2', 'legacy'],
  ['v1 client, 2025 era', 'v1', 'legacy'],
];

const binArgs = (project: Project) => [
  binPath,
  '--root',
  project.root,
  '--state-dir',
  project.stateDir,
  '--log-level',
  'warn',
];

async function start(kind: ClientKind, era: ConnectOptions['era'], answer: ElicitAnswer) {
  const project = await createProject({ production: { policy: { requiresApproval: true } } });
  const asked: Array<{ message: string; requestedSchema: unknown }> = [];
  const client = await connectStdio({ command: process.execPath, args: binArgs(project) }, kind, {
    ...(era === undefined ? {} : { era }),
    onElicit: (params) => {
      asked.push(params);
      return answer;
    },
  });
  const plan = (await client.callTool({ name: 'plan_deploy', arguments: { environment: 'production' } }))
    .structuredContent as { planId: string; planHash: string; releaseId: string };
  const apply = () => client.callTool({ name: 'apply_deploy', arguments: { planId: plan.planId } });
  return { project, client, plan, asked, apply };
}

const errorOf = (result: { _meta?: Record<string, unknown> }) =>
  result._meta?.['keel/error'] as ToolError | undefined;

describe('apply_deploy asks the person at the client', () => {
  it.each(eras)('accept deploys and names who approved (%s)', async (_what, kind, era) => {
    const { project, plan, asked, apply } = await start(kind, era, {
      action: 'accept',
      content: { approve: true, approver: 'Ada' },
    });
    const result = await apply();
    expect(result.structuredContent).toMatchObject({
      releaseId: plan.releaseId,
      status: 'live',
      approvedBy: 'Ada (asked at the client)',
    });
    expect(asked).toHaveLength(1);
    expect(asked[0]!.message).toContain(`Plan hash: ${plan.planHash}`);
    expect(asked[0]!.message).toContain('Files: 3 added, 0 changed, 0 removed, 0 unchanged');
    expect(asked[0]!.requestedSchema).toMatchObject({ required: ['approve', 'approver'] });
    const live = await readFile(path.join(project.deployRoot, 'production', 'current', 'index.html'), 'utf8');
    expect(live).toBe('<h1>v1</h1>\n');
  });

  it.each(eras)('decline deploys nothing (%s)', async (_what, kind, era) => {
    const { project, plan, apply } = await start(kind, era, { action: 'decline' });
    expect(errorOf(await apply())).toMatchObject({
      code: 'APPROVAL_REJECTED',
      message: `the person at the client declined to deploy '${plan.planId}'`,
      details: { reason: 'declined' },
    });
    await expect(
      readFile(path.join(project.deployRoot, 'production', 'current', 'index.html')),
    ).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it.each(eras)(
    'cancel deploys nothing and says how to approve out of band (%s)',
    async (_what, kind, era) => {
      const { plan, apply } = await start(kind, era, { action: 'cancel' });
      const error = errorOf(await apply());
      expect(error).toMatchObject({ code: 'APPROVAL_REQUIRED', details: { reason: 'cancelled' } });
      expect(error?.hint).toContain(`keel-deploy approve ${plan.planId}`);
    },
  );

  it('accepting with approve unticked is a decline', async () => {
    const { apply } = await start('v2', 'modern', {
      action: 'accept',
      content: { approve: false, approver: 'Ada' },
    });
    expect(errorOf(await apply())).toMatchObject({
      code: 'APPROVAL_REJECTED',
      details: { reason: 'declined' },
    });
  });

  it.each([
    ['v2', 'modern'],
    ['v1', 'legacy'],
  ] as const)(
    'a client that cannot ask its user gets APPROVAL_REQUIRED and the out-of-band way (%s)',
    async (kind, era) => {
      const project = await createProject({ production: { policy: { requiresApproval: true } } });
      const client = await connectStdio({ command: process.execPath, args: binArgs(project) }, kind, { era });
      const plan = (await client.callTool({ name: 'plan_deploy', arguments: { environment: 'production' } }))
        .structuredContent as { planId: string };
      const error = errorOf(
        await client.callTool({ name: 'apply_deploy', arguments: { planId: plan.planId } }),
      );
      expect(error).toMatchObject({ code: 'APPROVAL_REQUIRED', details: { planId: plan.planId } });
      expect(error?.hint).toContain(`keel-deploy approve ${plan.planId}`);
    },
  );
});

describe('the sealed request state on the 2026-07-28 era', () => {
  /** A client that hands input_required back instead of answering it, so the test can answer by hand. */
  async function manual(project: Project) {
    const client = new Client(
      { name: 'keel-test-manual', version: '0.0.0' },
      {
        capabilities: { elicitation: { form: {} } },
        versionNegotiation: { mode: 'auto' },
        inputRequired: { autoFulfill: false },
      },
    );
    await client.connect(
      new StdioClientTransport({ command: process.execPath, args: binArgs(project), stderr: 'pipe' }),
    );
    onTestFinished(() => client.close());
    const call = async (params: Record<string, unknown>) =>
      (await client.callTool(params as never, { allowInputRequired: true })) as unknown as {
        resultType?: string;
        requestState?: string;
        inputRequests?: Record<string, unknown>;
        structuredContent?: Record<string, unknown>;
        _meta?: Record<string, unknown>;
      };
    return call;
  }
  const yes = { approve_deploy: { action: 'accept', content: { approve: true, approver: 'Mallory' } } };

  it('refuses a tampered state, a state from another plan and an answer without one; the real one deploys', async () => {
    const project = await createProject({
      production: { policy: { requiresApproval: true } },
      staging: { policy: { requiresApproval: true } },
    });
    const call = await manual(project);
    const planOf = async (environment: string) =>
      (await call({ name: 'plan_deploy', arguments: { environment } })).structuredContent as {
        planId: string;
      };
    const production = await planOf('production');
    const staging = await planOf('staging');
    const asked = await call({ name: 'apply_deploy', arguments: { planId: production.planId } });
    expect(asked.resultType).toBe('input_required');
    expect(Object.keys(asked.inputRequests ?? {})).toEqual(['approve_deploy']);
    const state = asked.requestState!;
    const other = (await call({ name: 'apply_deploy', arguments: { planId: staging.planId } })).requestState!;

    const retry = (requestState: string | undefined) =>
      call({
        name: 'apply_deploy',
        arguments: { planId: production.planId },
        inputResponses: yes,
        ...(requestState === undefined ? {} : { requestState }),
      });
    const body = state.split('.')[1]!;
    const tampered = state.replace(
      body,
      `${body.slice(0, 20)}${body[20] === 'x' ? 'y' : 'x'}${body.slice(21)}`,
    );
    for (const [requestState, reason] of [
      [tampered, 'tampered'],
      [other, 'foreign'],
      [undefined, 'foreign'],
    ] as const) {
      const refused = await retry(requestState);
      expect(errorOf(refused)).toMatchObject({ code: 'APPROVAL_REJECTED', details: { reason } });
      expect(errorOf(refused)?.hint ?? '').toContain('keel-deploy approve');
    }
    const deployed = await retry(state);
    expect(deployed.structuredContent).toMatchObject({
      status: 'live',
      approvedBy: 'Mallory (asked at the client)',
    });
  });
});
