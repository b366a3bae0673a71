import { z } from 'zod';
import { shortText, workspacePath } from './common.js';

/** What the planning agent hands to the orchestrator: the work, cut into steps, and how to tell it is done. */
export const planV1 = z
  .object({
    version: z.literal('plan.v1'),
    summary: shortText(2000, 'what the change does and why, in a few sentences'),
    steps: z
      .array(
        z.object({
          id: shortText(40, 'a short id, e.g. "s1"'),
          description: shortText(2000, 'what to do in this step'),
          files: z.array(workspacePath).max(100).describe('files this step expects to touch'),
        }),
      )
      .min(1)
      .max(50)
      .describe('the steps, in order'),
    acceptance: z
      .array(shortText(1000, 'a criterion'))
      .min(1)
      .max(20)
      .describe('how a reviewer can tell the task is done (e.g. "the add() tests pass")'),
    risks: z.array(shortText(1000, 'a risk')).max(20).optional().describe('what could go wrong'),
  })
  .strict();

export type PlanV1 = z.infer<typeof planV1>;
