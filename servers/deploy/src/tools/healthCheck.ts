import { defineTool, ok, type AnyTool } from '@keel/kit';
import * as z from 'zod';
import type { Deployer } from '../deploy/deployer.js';
import { healthResultSchema } from '../health/healthCheck.js';
import { environmentArg } from './args.js';

/** `health_check`: runs an environment's configured health check now. */
export function healthCheckTool(deployer: Deployer): AnyTool {
  return defineTool({
    name: 'health_check',
    title: 'Health check',
    description:
      "Runs an environment's configured health check now (an HTTP GET expecting a status within a deadline, or a command that must exit 0) and reports the result. Changes nothing; health null means none is configured.",
    input: z.object({ environment: environmentArg }),
    output: z.object({
      environment: z.string(),
      current: z.string().nullable(),
      health: healthResultSchema.nullable(),
    }),
    effect: 'read',
    openWorld: true,
    render: (out) =>
      out.health === null
        ? `${out.environment}: no health check configured`
        : `${out.environment} (${out.current ?? 'nothing live'}): ${out.health.ok ? 'healthy' : 'UNHEALTHY'} — ${out.health.detail}`,
    handler: async (input, ctx) => {
      const checked = await deployer.health(input.environment, ctx);
      return checked.ok ? ok({ environment: input.environment, ...checked.value }) : checked;
    },
  });
}
