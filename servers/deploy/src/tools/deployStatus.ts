import { defineTool, ok, type AnyTool } from '@keel/kit';
import * as z from 'zod';
import type { Deployer } from '../deploy/deployer.js';
import { environmentArg } from './args.js';

/** `deploy_status`: the live release, a deploy under way (phase and progress), an interrupted one, the last result. */
export function deployStatusTool(deployer: Deployer): AnyTool {
  return defineTool({
    name: 'deploy_status',
    title: 'Deploy status',
    description:
      "Shows an environment's deploy state: the live release, a deploy or rollback under way with its phase and progress, an interrupted one awaiting reconciliation, and the last apply or rollback with its result.",
    input: z.object({ environment: environmentArg }),
    output: z.object({
      environment: z.string(),
      current: z.string().nullable(),
      generation: z.number().describe('Counts the releases and rollbacks of this environment.'),
      inProgress: z
        .object({
          operation: z.enum(['apply', 'rollback']),
          planId: z.string().nullable(),
          phase: z.string(),
          progress: z.object({ done: z.number(), total: z.number() }).optional(),
          since: z.string(),
        })
        .nullable(),
      interrupted: z
        .object({
          operation: z.enum(['apply', 'rollback']),
          planId: z.string().nullable(),
          releaseId: z.string().nullable(),
          phase: z.string(),
        })
        .nullable()
        .describe('A deploy whose process died; the next apply_deploy or rollback finishes or cleans it up.'),
      last: z
        .object({
          operation: z.enum(['apply', 'rollback']),
          releaseId: z.string().nullable(),
          planId: z.string().nullable(),
          status: z.enum(['live', 'rolled_back']),
          at: z.string(),
          approvedBy: z.string().nullable(),
        })
        .nullable(),
    }),
    effect: 'read',
    render: (out) => {
      const lines = [`${out.environment}: live ${out.current ?? '(nothing)'} (generation ${out.generation})`];
      if (out.inProgress !== null) {
        const progress =
          out.inProgress.progress === undefined
            ? ''
            : ` ${out.inProgress.progress.done}/${out.inProgress.progress.total}`;
        lines.push(
          `in progress: ${out.inProgress.operation} ${out.inProgress.planId ?? ''} ${out.inProgress.phase}${progress} since ${out.inProgress.since}`,
        );
      }
      if (out.interrupted !== null)
        lines.push(
          `interrupted: ${out.interrupted.operation} of ${out.interrupted.releaseId ?? '?'} in phase ${out.interrupted.phase}`,
        );
      if (out.last !== null)
        lines.push(
          `last: ${out.last.operation} ${out.last.releaseId ?? ''} ${out.last.status} at ${out.last.at}`,
        );
      return lines.join('\n');
    },
    handler: async (input, ctx) => {
      const status = await deployer.status(input.environment, ctx);
      return status.ok ? ok(status.value) : status;
    },
  });
}
