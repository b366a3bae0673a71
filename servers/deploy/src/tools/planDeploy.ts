import { budgetArg, defineTool, ok, truncationSchema, type AnyTool, type Truncation } from '@keel/kit';
import * as z from 'zod';
import type { DiffGroup } from '../build/manifest.js';
import type { Deployer } from '../deploy/deployer.js';
import { shownName } from '../text/names.js';
import { environmentArg } from './args.js';

const groupSchema = z.object({
  count: z.number(),
  bytes: z.number(),
  paths: z.array(z.string()).describe('The paths, in order, cut to maxPaths.'),
  truncated: truncationSchema.optional(),
});

function bounded(group: DiffGroup, limit: number): z.output<typeof groupSchema> {
  if (group.paths.length <= limit) return group;
  const truncated: Truncation = { limit, unit: 'items', total: group.paths.length };
  return { count: group.count, bytes: group.bytes, paths: group.paths.slice(0, limit), truncated };
}

/** `plan_deploy`: what deploying the current build would change, as a plan to apply; changes nothing. */
export function planDeployTool(deployer: Deployer): AnyTool {
  return defineTool({
    name: 'plan_deploy',
    title: 'Plan a deploy',
    description:
      'Compares the build directory of an environment with its live release and returns a plan: files added, changed and removed (counts, bytes, paths), the checks apply_deploy will make, and whether a person must approve. Deploys nothing; apply the returned planId with apply_deploy. A plan goes stale when the build changes or the environment gets another release or rollback.',
    input: z.object({
      environment: environmentArg,
      maxPaths: budgetArg({
        default: 50,
        max: 1000,
        unit: 'paths',
        what: 'each of added, changed and removed',
      }),
    }),
    output: z.object({
      planId: z.string().describe('Pass to apply_deploy.'),
      planHash: z.string().describe('sha256 of what was planned; an approval names it.'),
      environment: z.string(),
      releaseId: z.string().describe('The release apply_deploy will create.'),
      baseRelease: z.string().nullable().describe('The live release this plan was made against.'),
      requiresApproval: z.boolean(),
      files: z.object({
        added: groupSchema,
        changed: groupSchema,
        removed: groupSchema,
        unchanged: z.object({ count: z.number(), bytes: z.number() }),
      }),
      total: z.object({ files: z.number(), bytes: z.number() }).describe('The whole build.'),
      checks: z.array(z.string()).describe('What apply_deploy checks before and after switching.'),
      approveCommand: z
        .string()
        .nullable()
        .describe(
          'For environments that need approval: what a person runs to approve this plan out of band.',
        ),
      warnings: z.array(z.string()),
    }),
    effect: 'read',
    cursorIgnores: ['maxPaths'],
    render: (out) => {
      const lines = [
        `plan ${out.planId} for ${out.environment}: release ${out.releaseId} over ${out.baseRelease ?? '(nothing deployed)'}`,
        `  added ${out.files.added.count} (${out.files.added.bytes} B), changed ${out.files.changed.count} (${out.files.changed.bytes} B), removed ${out.files.removed.count}, unchanged ${out.files.unchanged.count}`,
      ];
      for (const [label, group] of [
        ['+', out.files.added],
        ['~', out.files.changed],
        ['-', out.files.removed],
      ] as const) {
        for (const file of group.paths) lines.push(`  ${label} ${shownName(file)}`);
        if (group.truncated !== undefined)
          lines.push(`  ${label} … ${group.count - group.paths.length} more`);
      }
      for (const check of out.checks) lines.push(`check: ${check}`);
      if (out.approveCommand !== null) lines.push(`approval required: ${out.approveCommand}`);
      for (const warning of out.warnings) lines.push(`warning: ${warning}`);
      lines.push(`plan hash ${out.planHash}`);
      return lines.join('\n');
    },
    handler: async (input, ctx) => {
      const planned = await deployer.plan(input.environment, ctx);
      if (!planned.ok) return planned;
      const { plan, diff, total, checks, warnings, requiresApproval, approveCommand } = planned.value;
      return ok({
        planId: plan.planId,
        planHash: plan.planHash,
        environment: plan.environment,
        releaseId: plan.releaseId,
        baseRelease: plan.baseRelease,
        requiresApproval,
        files: {
          added: bounded(diff.added, input.maxPaths),
          changed: bounded(diff.changed, input.maxPaths),
          removed: bounded(diff.removed, input.maxPaths),
          unchanged: diff.unchanged,
        },
        total,
        checks,
        approveCommand,
        warnings,
      });
    },
  });
}
