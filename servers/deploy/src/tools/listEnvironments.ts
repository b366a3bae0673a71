import { defineTool, ok, type AnyTool } from '@keel/kit';
import * as z from 'zod';
import type { Deployer } from '../deploy/deployer.js';
import { describeHealth } from '../health/healthCheck.js';

/** `list_environments`: every configured environment with its target, policy, live release and lock. */
export function listEnvironmentsTool(deployer: Deployer): AnyTool {
  return defineTool({
    name: 'list_environments',
    title: 'List environments',
    description:
      'Lists the deploy environments from the config: build directory, target, whether deploys need approval, the health check, the live release and whether a deploy holds the lock now.',
    input: z.object({}),
    output: z.object({
      environments: z.array(
        z.object({
          name: z.string(),
          build: z.string().describe('The build directory, relative to the project root.'),
          target: z.object({
            type: z.enum(['directory', 'command']),
            description: z.string().describe('The deploy root of a directory target, or the deploy command.'),
          }),
          requiresApproval: z.boolean(),
          keep: z.number().describe('Releases kept on the target.'),
          health: z.string().nullable().describe('The health check, or null when none is configured.'),
          current: z.string().nullable().describe('The live release id, or null when nothing is deployed.'),
          inProgress: z
            .object({ operation: z.string(), planId: z.string().nullable(), phase: z.string() })
            .nullable()
            .describe('The deploy or rollback holding the lock now, if any.'),
          interrupted: z
            .boolean()
            .describe('An interrupted deploy awaits reconciliation (the next apply or rollback does it).'),
        }),
      ),
    }),
    effect: 'read',
    render: (out) =>
      out.environments
        .map(
          (env) =>
            `${env.name}: ${env.build} -> ${env.target.type} ${env.target.description}; live ${env.current ?? '(nothing)'}` +
            `${env.requiresApproval ? '; requires approval' : ''}${env.inProgress === null ? '' : `; ${env.inProgress.operation} in progress (${env.inProgress.phase})`}` +
            `${env.interrupted ? '; interrupted deploy pending' : ''}`,
        )
        .join('\n'),
    handler: async (_input, ctx) => {
      const environments = [];
      for (const env of deployer.config.environments.values()) {
        const status = await deployer.status(env.name, ctx);
        if (!status.ok) return status;
        const { current, inProgress, interrupted } = status.value;
        environments.push({
          name: env.name,
          build: env.buildAsWritten,
          target: { type: env.target.type, description: deployer.target(env.name).description },
          requiresApproval: env.policy.requiresApproval,
          keep: env.policy.keep,
          health: env.policy.health === undefined ? null : describeHealth(env.policy.health),
          current,
          inProgress:
            inProgress === null
              ? null
              : { operation: inProgress.operation, planId: inProgress.planId, phase: inProgress.phase },
          interrupted: interrupted !== null,
        });
      }
      return ok({ environments });
    },
  });
}
