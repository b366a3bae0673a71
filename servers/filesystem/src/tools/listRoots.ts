import path from 'node:path';
import { defineTool, ok, type AnyTool } from '@keel/kit';
import * as z from 'zod';
import type { FsDeps } from '../fs/access.js';

/** `list_roots`: the directories this server may touch, after any narrowing by the client's roots. */
export function listRootsTool(deps: FsDeps): AnyTool {
  return defineTool({
    name: 'list_roots',
    title: 'List roots',
    description:
      'Lists the directories this server can reach (relative paths resolve against the first), and its write rules.',
    input: z.object({}),
    output: z.object({
      roots: z.array(z.object({ path: z.string(), name: z.string() })),
      gitWrites: z.boolean().describe('Whether writes into .git/ are allowed.'),
      deny: z.array(z.string()).describe('Globs no tool may read, write or list.'),
    }),
    effect: 'read',
    render: (out) =>
      [
        ...out.roots.map((r) => r.path),
        `writes into .git/: ${out.gitWrites ? 'allowed' : 'refused'}`,
        ...(out.deny.length === 0 ? [] : [`denied: ${out.deny.join(', ')}`]),
      ].join('\n'),
    handler: async (_input, ctx) =>
      ok({
        roots: ctx.jail.roots.map((root) => ({ path: root, name: path.basename(root) })),
        gitWrites: deps.policy.allowGitWrites,
        deny: [...deps.policy.deny],
      }),
  });
}
