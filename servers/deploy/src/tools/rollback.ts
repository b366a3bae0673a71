import { defineTool, type AnyTool } from '@keel/kit';
import * as z from 'zod';
import type { Deployer } from '../deploy/deployer.js';
import { healthResultSchema } from '../health/healthCheck.js';
import { environmentArg } from './args.js';

/** `rollback`: switches an environment back to the previous live release, or to a named one. */
export function rollbackTool(deployer: Deployer): AnyTool {
  return defineTool({
    name: 'rollback',
    title: 'Roll back',
    description:
      'Switches an environment back to an earlier release in one step: the named releaseId, or else the newest release before the live one that went live and passed its health check (or had none). Rolling back to the release that is already live changes nothing (changed: false). Plans made before a rollback go stale. Runs the health check afterwards and reports it.',
    input: z.object({
      environment: environmentArg,
      releaseId: z
        .string()
        .min(1)
        .max(128)
        .optional()
        .describe('The release to make live (list_releases shows them); omit for the previous one.'),
    }),
    output: z.object({
      environment: z.string(),
      from: z.string().nullable(),
      to: z.string(),
      changed: z.boolean(),
      health: healthResultSchema.nullable(),
      notes: z.array(z.string()),
    }),
    effect: 'write',
    openWorld: true,
    render: (out) =>
      [
        out.changed
          ? `${out.environment}: rolled back from ${out.from ?? 'nothing'} to ${out.to}`
          : `${out.environment}: ${out.to} is already live`,
        ...(out.health === null ? [] : [`health: ${out.health.ok ? 'ok' : 'FAILED'} — ${out.health.detail}`]),
        ...out.notes.map((note) => `note: ${note}`),
      ].join('\n'),
    handler: async (input, ctx) => await deployer.rollback(input.environment, input.releaseId, ctx),
  });
}
