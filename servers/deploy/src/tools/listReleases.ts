import { budgetArg, cursorArg, defineTool, ok, truncationSchema, type AnyTool } from '@keel/kit';
import * as z from 'zod';
import type { Deployer } from '../deploy/deployer.js';
import { environmentArg } from './args.js';

/** `list_releases`: the releases on an environment's target, newest first, and which is live. */
export function listReleasesTool(deployer: Deployer): AnyTool {
  return defineTool({
    name: 'list_releases',
    title: 'List releases',
    description:
      "Lists the releases kept on an environment's target, newest first: which one is live, the plan each came from, whether its health check passed and who approved it. Use a releaseId with rollback.",
    input: z.object({
      environment: environmentArg,
      limit: budgetArg({ default: 20, max: 200, unit: 'releases', what: 'releases' }),
      cursor: cursorArg,
    }),
    output: z.object({
      environment: z.string(),
      current: z.string().nullable(),
      releases: z.array(
        z.object({
          releaseId: z.string(),
          current: z.boolean(),
          seq: z
            .number()
            .nullable()
            .describe('Order of creation in this environment (null if the state does not know it).'),
          createdAt: z.string().nullable(),
          planId: z.string().nullable(),
          status: z
            .enum(['live', 'rolled_back'])
            .nullable()
            .describe('How its deploy ended: live, or rolled_back by its health check.'),
          healthOk: z.boolean().nullable(),
          approvedBy: z.string().nullable(),
        }),
      ),
      total: z.number(),
      truncated: truncationSchema.optional(),
    }),
    effect: 'read',
    cursorIgnores: ['limit'],
    render: (out) => {
      const lines = out.releases.map(
        (release) =>
          `${release.current ? '*' : ' '} ${release.releaseId}  ${release.createdAt ?? '?'}  ${release.status ?? '?'}${release.approvedBy === null ? '' : `  approved by ${release.approvedBy}`}`,
      );
      if (lines.length === 0) lines.push(`${out.environment}: no releases`);
      if (out.truncated?.nextCursor !== undefined) lines.push(`(more: cursor ${out.truncated.nextCursor})`);
      return lines.join('\n');
    },
    handler: async (input, ctx) => {
      const listed = await deployer.releases(input.environment, ctx);
      if (!listed.ok) return listed;
      const page = ctx.list(listed.value.releases, { limit: input.limit, cursor: input.cursor });
      if (!page.ok) return page;
      return ok({
        environment: input.environment,
        current: listed.value.current,
        releases: page.value.items,
        total: page.value.total,
        ...(page.value.truncated === undefined ? {} : { truncated: page.value.truncated }),
      });
    },
  });
}
