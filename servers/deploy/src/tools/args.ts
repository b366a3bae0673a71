import * as z from 'zod';

export const environmentArg = z
  .string()
  .min(1)
  .max(64)
  .describe('The environment, as named in the deploy config (list_environments shows them).');

export const filesSchema = z
  .object({
    copied: z.number().describe('Files copied from the build.'),
    linked: z.number().describe('Unchanged files hard-linked from the previous release.'),
    bytesWritten: z.number().describe('Bytes copied.'),
  })
  .describe('What building the release wrote.');
