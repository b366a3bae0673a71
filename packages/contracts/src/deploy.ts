import { z } from 'zod';
import { shortText } from './common.js';

/** The outcome of a deploy step. `skipped` says why no deploy was attempted. */
export const deployV1 = z
  .object({
    version: z.literal('deploy.v1'),
    environment: shortText(100, 'the environment name'),
    status: z.enum(['live', 'rolled_back', 'failed', 'skipped']),
    releaseId: z.string().max(200).optional(),
    planId: z.string().max(200).optional(),
    planHash: z.string().max(200).optional(),
    health: z
      .object({ ok: z.boolean(), detail: z.string().max(2000) })
      .strict()
      .optional(),
    reason: z.string().max(2000).optional().describe('why it was skipped, failed or rolled back'),
  })
  .strict();

export type DeployV1 = z.infer<typeof deployV1>;
