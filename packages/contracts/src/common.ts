import { z } from 'zod';

/** A path inside the task's workspace, as the servers take it: relative, forward slashes. */
export const workspacePath = z
  .string()
  .min(1)
  .max(1024)
  .describe('a path relative to the task workspace, with forward slashes');

export const shortText = (max: number, what: string) => z.string().min(1).max(max).describe(what);

export const count = z.number().int().nonnegative();
