import { z } from 'zod';
import { count, shortText, workspacePath } from './common.js';

/** What the coding agent hands back: the files it changed and the commit that holds them. */
export const changeV1 = z
  .object({
    version: z.literal('change.v1'),
    summary: shortText(2000, 'what was changed and why'),
    files: z
      .array(
        z.object({
          path: workspacePath,
          status: z.enum(['added', 'modified', 'deleted', 'renamed']),
          linesAdded: count,
          linesRemoved: count,
        }),
      )
      .max(500)
      .describe('every file the change touches'),
    commit: z
      .object({
        sha: z
          .string()
          .regex(/^[0-9a-f]{40}$/)
          .describe('the full commit sha'),
        message: shortText(5000, 'the commit message'),
      })
      .nullable()
      .describe('the commit holding the change, or null when it was left uncommitted'),
    addressed: z
      .array(shortText(2000, 'a review comment and how it was addressed'))
      .max(50)
      .optional()
      .describe('for a rework round: the review comments this change answers'),
  })
  .strict();

export type ChangeV1 = z.infer<typeof changeV1>;
