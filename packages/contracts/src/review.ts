import { z } from 'zod';
import { shortText, workspacePath } from './common.js';

/** The review agent's verdict on a change. `request_changes` sends the task back to coding. */
export const reviewV1 = z
  .object({
    version: z.literal('review.v1'),
    verdict: z.enum(['approve', 'request_changes']),
    summary: shortText(2000, 'the verdict in a sentence or two'),
    comments: z
      .array(
        z.object({
          path: workspacePath.optional(),
          line: z.number().int().positive().optional(),
          severity: z.enum(['blocker', 'major', 'minor', 'nit']),
          body: shortText(4000, 'what is wrong and what to do instead'),
        }),
      )
      .max(100)
      .describe('findings; a request_changes verdict needs at least one blocker or major'),
  })
  .strict()
  .refine(
    (review) =>
      review.verdict === 'approve' ||
      review.comments.some((c) => c.severity === 'blocker' || c.severity === 'major'),
    { message: 'a request_changes verdict needs at least one blocker or major comment', path: ['comments'] },
  );

export type ReviewV1 = z.infer<typeof reviewV1>;
