import { defineTool, type AnyTool } from '@keel/kit';
import * as z from 'zod';
import { APPROVAL_META_KEY } from '@keel/kit/approval';
import type { Deployer } from '../deploy/deployer.js';
import { healthResultSchema } from '../health/healthCheck.js';
import { filesSchema } from './args.js';

/** `apply_deploy`: applies a plan exactly as planned, switches atomically, health-gates with automatic rollback. */
export function applyDeployTool(deployer: Deployer): AnyTool {
  return defineTool({
    name: 'apply_deploy',
    title: 'Apply a deploy plan',
    description: `Applies a plan from plan_deploy: builds the release (unchanged files hard-linked), switches the environment to it in one step, runs the health check and switches back by itself if it fails (status rolled_back). Refuses a stale plan (STALE_PLAN: the build changed, or another release or rollback happened since planning); plan again then. Applying the same plan again returns the existing release (replayed: true). Environments that require approval ask the person at the client to approve the plan (its summary and hash) when the client supports elicitation; otherwise they need a signed token from a person in _meta["${APPROVAL_META_KEY}"], and without it the call fails with APPROVAL_REQUIRED and the command that person runs. Older releases beyond the configured number are deleted.`,
    input: z.object({
      planId: z.string().min(1).max(128).describe('The planId that plan_deploy returned.'),
    }),
    output: z.object({
      releaseId: z.string(),
      environment: z.string(),
      planId: z.string(),
      status: z
        .enum(['live', 'rolled_back'])
        .describe('rolled_back: the health check failed and the previous release was restored.'),
      replayed: z
        .boolean()
        .describe('True when this plan had already been applied and nothing was done now.'),
      previousRelease: z.string().nullable().describe('What was live before this deploy.'),
      current: z.string().nullable().describe('What is live now.'),
      health: healthResultSchema
        .nullable()
        .describe('The health check after the switch, or null when none is configured.'),
      files: filesSchema,
      approvedBy: z
        .string()
        .nullable()
        .describe('The approver named by the approval token, for environments that require one.'),
      notes: z
        .array(z.string())
        .describe('What reconciliation of an earlier interrupted deploy did first, if anything.'),
    }),
    effect: 'destructive',
    openWorld: true,
    idempotent: true,
    timeoutMs: 600_000,
    render: (out) => {
      const lines = [
        out.replayed
          ? `${out.releaseId} was already applied from ${out.planId}: ${out.status}`
          : out.status === 'live'
            ? `${out.releaseId} is live on ${out.environment} (was ${out.previousRelease ?? 'nothing'})`
            : `${out.releaseId} failed its health check on ${out.environment}; rolled back to ${out.current ?? 'nothing'}`,
        `files: ${out.files.copied} copied (${out.files.bytesWritten} B), ${out.files.linked} hard-linked`,
      ];
      if (out.health !== null)
        lines.push(`health: ${out.health.ok ? 'ok' : 'FAILED'} — ${out.health.detail}`);
      if (out.approvedBy !== null) lines.push(`approved by ${out.approvedBy}`);
      for (const note of out.notes) lines.push(`note: ${note}`);
      return lines.join('\n');
    },
    handler: async (input, ctx) => await deployer.apply(input.planId, ctx),
  });
}
